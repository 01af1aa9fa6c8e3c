#!/usr/bin/env bash
# Local infrastructure without Docker (ADR 0006): each service's MariaDB (one
# server, or with DB_NODES=3 a three-node Galera cluster behind HAProxy, ADR 0060)
# and Apache Kafka (KRaft: one combined broker+controller node, or three with
# KAFKA_NODES=3, ADR 0045), each a plain process that can be killed with
# `kill -9`, paused with SIGSTOP and started again on its own data.
#
# Usage: deploy/local/infra.sh <command> [server...]
#   install                  install what is missing (MariaDB, Galera, HAProxy via apt, Kafka jars via Maven;
#                            with ORDER_OUTBOX_RELAY=debezium Kafka Connect's and Debezium's jars)
#   up                       install, then start every server that is not running (idempotent)
#   down                     stop every server gracefully, of every mode (idempotent)
#   status                   one line per server: up/down, pid, port (a Galera node's state, a proxy's writer)
#   start   <server>...      start servers (in parallel) and wait until each accepts connections
#   stop    <server>...      stop servers gracefully (SIGTERM to all, then wait)
#   kill    <server>...      kill -9 servers (no clean shutdown)
#   pause   <server>         SIGSTOP one server (it keeps its sockets but answers nothing)
#   resume  <server>         SIGCONT a paused server
#   pid     <server>         print the pid of a running server
#   config  <server>         print the server.properties (Kafka node), my.cnf (database node) or
#                            haproxy.cfg (proxy) the server starts with
#   ports                    one line per port the servers listen on: server, port, up|down
#   writer  <db>             the node a database proxy sends the writes to (order-db or payment-db)
#   compose-connect <dir>    write docker compose's Kafka Connect worker and connector files
#                            (deploy/compose/connect/: the same worker and connector as `connect`)
#   isolate <galera node>    cut the node off from the other two (nftables, as root); heal undoes it
#   heal    <galera node>
# Servers: order-db, payment-db (DB_NODES=1); order-db-1..3, order-db-proxy, payment-db-1..3,
# payment-db-proxy (DB_NODES=3); order-db-primary, order-db-replica, order-db-proxy and the same
# for payment-db (DB_NODES=2); kafka (KAFKA_NODES=1) or kafka-1, kafka-2, kafka-3 (KAFKA_NODES=3);
# connect (ORDER_OUTBOX_RELAY=debezium).
#
# Environment (defaults in brackets):
#   ONCEFLOW_INFRA_DIR    data, logs and pid files            [<repo>/.local/infra]
#   ONCEFLOW_KAFKA_LIBS   the broker's jars                   [<repo>/.local/kafka-libs]
#   ORDER_OUTBOX_RELAY    debezium: also the server `connect` (Kafka Connect with Debezium's MariaDB
#                         connector relaying the order outbox, REST on CONNECT_PORT [8083]), and
#                         order-db writes a binary log (DB_NODES=1 only; ADR 0068)
#   ORDER_DB_PORT [3307]  PAYMENT_DB_PORT [3308]: the service's database address: the server's,
#                         or with DB_NODES=2|3 its proxy's
#   DB_NODES [1]          1: one server per service; 3: a Galera cluster per service, node n's clients
#                         on the port +100n (3407, 3507, 3607; 3408, ...), replication +10, IST +20,
#                         SST +30, behind HAProxy on the service's port; 2: a primary with an
#                         asynchronous replica behind HAProxy (the ports of nodes 1 and 2): the
#                         fault suite's negative control (deploy/local/dbcluster.sh, ADR 0060)
#   KAFKA_NODES [1]       1: one node `kafka`, clients on KAFKA_PORT, controller on KAFKA_CONTROLLER_PORT;
#                         3: nodes kafka-1..3, clients on KAFKA_PORT, +1, +2 (9092, 9093, 9094),
#                         controllers on KAFKA_CONTROLLER_PORT, +1, +2; replication factor 3,
#                         min.insync.replicas=2, no unclean leader election
#   KAFKA_PORT [9092]     KAFKA_CONTROLLER_PORT [9093; with KAFKA_NODES=3: KAFKA_PORT+100, i.e. 9192]
#   KAFKA_HEAP            JVM heap flags, per node            [-Xms256m -Xmx512m; 3 nodes: -Xms128m -Xmx256m]
#   KAFKA_PROXIED_PORT / KAFKA_PROXIED_ADVERTISED_PORT   optional second listener (one node only), for a
#                         TCP proxy in front of the broker: the broker listens on the first port and
#                         tells clients to connect to the second (where the proxy listens)
# The modes keep their data apart ($ONCEFLOW_INFRA_DIR/kafka vs kafka-1..3, order-db vs order-db-1..3);
# only one of each runs at a time.
# Other sets of servers are this script with another directory and ports: `make test`'s
# (.local/test-infra; 12307, 12308, 18092, ADR 0057) and the e2e harness's (e2e/harness/infra.go).
# Every database server gets its service's database (`orders` on order-db,
# `payments` on payment-db) with that service's migration and service users
# (deploy/dbusers/<server>.sql, ADR 0049), and the user onceflow/onceflow with
# all privileges, grant option included: the development and test superuser
# (the tests create their databases and those databases' users with it), never
# a service's; and onceflow_check@127.0.0.1, without password or privilege,
# which HAProxy's health check (dbcheck.sh) reads the server's state with. The
# set-up runs on every start, also of a server already running, so data dirs of
# earlier versions get the users; on a cluster it runs on one node, which
# replicates it to the others.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
INFRA_DIR=${ONCEFLOW_INFRA_DIR:-$repo/.local/infra}
KAFKA_LIBS=${ONCEFLOW_KAFKA_LIBS:-$repo/.local/kafka-libs}
ORDER_DB_PORT=${ORDER_DB_PORT:-3307}
PAYMENT_DB_PORT=${PAYMENT_DB_PORT:-3308}
DB_NODES=${DB_NODES:-1}
KAFKA_NODES=${KAFKA_NODES:-1}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_PROXIED_PORT=${KAFKA_PROXIED_PORT:-}
KAFKA_PROXIED_ADVERTISED_PORT=${KAFKA_PROXIED_ADVERTISED_PORT:-}
ORDER_OUTBOX_RELAY=${ORDER_OUTBOX_RELAY:-}

LOG_PREFIX=infra
# shellcheck source=deploy/local/lib.sh
. "$here/lib.sh"
# shellcheck source=deploy/local/dbcluster.sh
. "$here/dbcluster.sh"
# shellcheck source=deploy/local/connect.sh
. "$here/connect.sh"

# The Kafka version is the one pom.xml fetches (ADR 0055).
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
[ -n "$KAFKA_VERSION" ] || die "no <kafka.version> in $here/pom.xml"

case "$KAFKA_NODES" in
  1)
    KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
    KAFKA_HEAP=${KAFKA_HEAP:--Xms256m -Xmx512m}
    KAFKA_SERVERS=(kafka) OTHER_KAFKA_SERVERS=(kafka-1 kafka-2 kafka-3) ;;
  3)
    KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 100))}
    KAFKA_HEAP=${KAFKA_HEAP:--Xms128m -Xmx256m}
    KAFKA_SERVERS=(kafka-1 kafka-2 kafka-3) OTHER_KAFKA_SERVERS=(kafka)
    # The client ports (KAFKA_PORT..+2) and controller ports must not overlap.
    if [ $((KAFKA_CONTROLLER_PORT - KAFKA_PORT)) -gt -3 ] && [ $((KAFKA_CONTROLLER_PORT - KAFKA_PORT)) -lt 3 ]; then
      die "KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT overlaps the client ports $KAFKA_PORT-$((KAFKA_PORT + 2)) of KAFKA_NODES=3"
    fi
    [ -z "$KAFKA_PROXIED_PORT" ] || die "KAFKA_PROXIED_PORT is for the single node only (KAFKA_NODES=1)" ;;
  *) die "KAFKA_NODES=$KAFKA_NODES: 1 or 3" ;;
esac
case "$DB_NODES" in
  1 | 2 | 3) read -ra DB_SERVERS <<<"$(db_servers "$DB_NODES")" ;;
  *) die "DB_NODES=$DB_NODES: 1, 3 (or 2: the negative control's primary and asynchronous replica)" ;;
esac
# The other modes' database servers: stopped by `down`, listed by `status` while running.
OTHER_DB_SERVERS=()
for m in 1 2 3; do
  [ "$m" = "$DB_NODES" ] && continue
  for name in $(db_servers "$m"); do
    [[ " ${DB_SERVERS[*]} ${OTHER_DB_SERVERS[*]} " == *" $name "* ]] || OTHER_DB_SERVERS+=("$name")
  done
done
SERVERS=("${DB_SERVERS[@]}" "${KAFKA_SERVERS[@]}")
# Debezium relays the order outbox (ADR 0068): Kafka Connect runs its
# connector, and the order database writes the binary log it reads.
case "$ORDER_OUTBOX_RELAY" in
  debezium)
    [ "$DB_NODES" = 1 ] || die "ORDER_OUTBOX_RELAY=debezium runs with DB_NODES=1 only"
    SERVERS+=(connect) ;;
  "" | batch | single) ;;
  *) die "ORDER_OUTBOX_RELAY=$ORDER_OUTBOX_RELAY: batch, single or debezium" ;;
esac

# ---------------------------------------------------------------- install

install_mariadb() {
  if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then return; fi
  log "installing mariadb-server from Debian's packages"
  apt_install mariadb-server mariadb-client
}

install_kafka() {
  if [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] && [ -f "$KAFKA_LIBS/.complete" ]; then return; fi
  command -v java >/dev/null 2>&1 || die "java is missing (Java 17 runs the Kafka broker)"
  command -v mvn >/dev/null 2>&1 || die "mvn is missing (Maven fetches the Kafka jars)"
  log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
  rm -rf "$KAFKA_LIBS"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >&2
  touch "$KAFKA_LIBS/.complete"
}

cmd_install() {
  install_mariadb; install_dbcluster; install_kafka
  [ "$ORDER_OUTBOX_RELAY" != debezium ] || install_connect
}

# ---------------------------------------------------------------- helpers

mariadbd_bin() { command -v mariadbd 2>/dev/null || echo /usr/sbin/mariadbd; }

port_of() {
  case "$1" in
    order-db | order-db-proxy) echo "$ORDER_DB_PORT" ;;
    payment-db | payment-db-proxy) echo "$PAYMENT_DB_PORT" ;;
    kafka) echo "$KAFKA_PORT" ;;
    connect) echo "$CONNECT_PORT" ;;
    kafka-[123]) echo $((KAFKA_PORT + ${1#kafka-} - 1)) ;;
    *) is_db_node "$1" && { node_port "$1"; return; }
      die "unknown server '$1' (one of: ${SERVERS[*]})" ;;
  esac
}

# known_server dies unless $1 is a server of this mode (DB_NODES, KAFKA_NODES).
known_server() {
  known_server_quiet "$1" && return 0
  die "unknown server '$1' with DB_NODES=$DB_NODES and KAFKA_NODES=$KAFKA_NODES (one of: ${SERVERS[*]})"
}

known_server_quiet() {
  local s
  for s in "${SERVERS[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}

is_kafka() { case "$1" in kafka | kafka-[123]) return 0 ;; esac; return 1; }

# controller_port_of prints a Kafka node's controller (KRaft quorum) port.
controller_port_of() {
  case "$1" in
    kafka) echo "$KAFKA_CONTROLLER_PORT" ;;
    kafka-[123]) echo $((KAFKA_CONTROLLER_PORT + ${1#kafka-} - 1)) ;;
  esac
}

pidfile_of() { echo "$INFRA_DIR/$1/$1.pid"; }

# pid_of prints the pid of a live server process, or nothing.
pid_of() {
  local f pid
  f=$(pidfile_of "$1")
  [ -f "$f" ] || return 0
  pid=$(cat "$f" 2>/dev/null || true)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
  return 0
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # wait_for <server> <seconds>
  local name=$1 deadline=$((SECONDS + $2)) port
  port=$(port_of "$name")
  while [ $SECONDS -lt $deadline ]; do
    [ -n "$(pid_of "$name")" ] || die "$name exited during start-up; see $INFRA_DIR/$name/$name.log"
    if is_kafka "$name"; then
      # Only log lines written after this start count (the log is appended to across restarts).
      port_open "$port" && tail -c "+$(($(cat "$INFRA_DIR/$name/.log-offset") + 1))" "$INFRA_DIR/$name/$name.log" 2>/dev/null \
        | grep -q 'Kafka Server started' && return 0
    else
      mariadb-admin --no-defaults --socket="$INFRA_DIR/$name/mysqld.sock" -uroot ping >/dev/null 2>&1 \
        && port_open "$port" && return 0
    fi
    sleep 0.2
  done
  die "$name did not become ready within $2 s; see $INFRA_DIR/$name/$name.log"
}

# ---------------------------------------------------------------- MariaDB

start_db() {
  local name=$1 dir="$INFRA_DIR/$1" port
  port=$(port_of "$name")
  # A temporary directory of its own: in the shared /tmp, a temporary table of
  # mariadb-install-db once vanished mid-way (Errcode 2 on its delete).
  mkdir -p "$dir/tmp"
  if [ ! -d "$dir/data/mysql" ]; then
    log "$name: initialising data dir $dir/data"
    mariadb-install-db --no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" --user="$(id -un)" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 \
      || die "$name: mariadb-install-db failed; see $dir/install.log"
  fi
  port_open "$port" && die "$name: port $port is taken by another process"
  local binlog=()
  read -ra binlog <<<"$(binlog_flags "$name")"
  # innodb_flush_log_at_trx_commit=1: every commit is on disk before the client hears OK.
  setsid "$(mariadbd_bin)" --no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" --socket="$dir/mysqld.sock" \
    --port="$port" --bind-address=127.0.0.1 --user="$(id -un)" --pid-file="$dir/mysqld.pid" \
    --innodb-flush-log-at-trx-commit=1 --innodb-buffer-pool-size=128M \
    --max-connections=400 --skip-name-resolve --character-set-server=utf8mb4 \
    --collation-server=utf8mb4_unicode_ci --log-error="$dir/$name.log" "${binlog[@]}" \
    </dev/null >>"$dir/$name.log" 2>&1 &
  echo $! >"$(pidfile_of "$name")"
  wait_for "$name" 60
  setup_db "$name" "$dir/mysqld.sock"
}

# binlog_flags prints the flags that turn on server $1's binary log: only the
# order database's, and only when Debezium relays its outbox
# (ORDER_OUTBOX_RELAY=debezium, ADR 0068): the connector reads row events
# (ROW, full images) as a replica with its own server id would. Other modes
# pay nothing for a log nobody reads.
binlog_flags() {
  [ "$1" = order-db ] && [ "$ORDER_OUTBOX_RELAY" = debezium ] || return 0
  echo "--log-bin=$INFRA_DIR/$1/data/binlog --binlog-format=ROW --binlog-row-image=FULL --server-id=1 --binlog-expire-logs-seconds=86400"
}

# binlog_on reports whether database server $1 writes its binary log.
binlog_on() {
  [ "$(mariadb --no-defaults --socket="$INFRA_DIR/$1/mysqld.sock" -uroot -N -e 'SELECT @@log_bin' 2>/dev/null)" = 1 ]
}

# setup_db creates (or keeps) the database and users of server $1 (or of the
# cluster node $1 belongs to) through socket $2; idempotent.
setup_db() {
  local name=$1 family
  family=$(family_of "$name")
  rm -f "$INFRA_DIR/$name/.needs-setup" # the marker of earlier versions, which set up only once
  {
    cat <<SQL
CREATE USER IF NOT EXISTS 'onceflow'@'%' IDENTIFIED BY 'onceflow';
GRANT ALL PRIVILEGES ON *.* TO 'onceflow'@'%' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'onceflow_check'@'127.0.0.1';
SQL
    cat "$repo/deploy/dbusers/$family.sql"
  } | mariadb --no-defaults --connect-timeout=10 --socket="$2" -uroot \
    || die "$name: setting up its database and users failed"
}

# ---------------------------------------------------------------- Kafka

# write_kafka_config writes server.properties and log4j2.properties of Kafka node
# $1 (kafka, or kafka-1..3 of the cluster) into its directory $2.
write_kafka_config() {
  local name=$1 dir=$2 port cport listeners advertised node_id voters rf min_isr
  port=$(port_of "$name")
  cport=$(controller_port_of "$name")
  listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
  advertised="PLAINTEXT://127.0.0.1:$port"
  if [ -n "$KAFKA_PROXIED_PORT" ]; then
    listeners="$listeners,PROXIED://127.0.0.1:$KAFKA_PROXIED_PORT"
    advertised="$advertised,PROXIED://127.0.0.1:${KAFKA_PROXIED_ADVERTISED_PORT:?needs KAFKA_PROXIED_ADVERTISED_PORT}"
  fi
  if [ "$name" = kafka ]; then
    node_id=1 voters="1@127.0.0.1:$cport" rf=1 min_isr=1
  else
    node_id=${name#kafka-} rf=3 min_isr=2
    voters="1@127.0.0.1:$KAFKA_CONTROLLER_PORT,2@127.0.0.1:$((KAFKA_CONTROLLER_PORT + 1)),3@127.0.0.1:$((KAFKA_CONTROLLER_PORT + 2))"
  fi
  cat >"$dir/server.properties" <<PROPS
# Combined KRaft node (broker + controller) $name of $KAFKA_NODES, written by deploy/local/infra.sh.
process.roles=broker,controller
node.id=$node_id
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT
log.dirs=$dir/data
# Topics are created explicitly, with the partition counts in pkg/events.
auto.create.topics.enable=false
num.partitions=1
# Replication (ADR 0045): one node has one replica of everything; three nodes keep
# three, and a write with acks=all needs two in sync (one broker may be down).
default.replication.factor=$rf
min.insync.replicas=$min_isr
unclean.leader.election.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
# A new consumer group joins at once instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
# After a kill -9 the controller keeps the dead incarnation registered until its session
# expires (9 s by default) and refuses the restarted broker until then: keep it short.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
log.retention.hours=168
# Load partition logs in parallel after an unclean shutdown (kill -9).
num.recovery.threads.per.data.dir=2
PROPS
  # Log4j 2's properties format (Kafka 4 dropped Log4j 1 and its log4j.properties).
  {
    log4j2_to_file "$dir/$name.log" '[%d] %p %m (%c)%n'
    cat <<PROPS
logger.request.name=kafka.request.logger
logger.request.level=WARN
logger.statechange.name=state.change.logger
logger.statechange.level=WARN
logger.cleaner.name=kafka.log.LogCleaner
logger.cleaner.level=WARN
logger.storage.name=org.apache.kafka.storage
logger.storage.level=WARN
logger.coordinator.name=kafka.coordinator
logger.coordinator.level=WARN
PROPS
  } >"$dir/log4j2.properties"
}

# log4j2_to_file prints the Log4j 2 properties that send every line at INFO and
# above to file $1 (appended across restarts) in pattern $2; the caller adds its
# loggers' levels. Kafka's nodes and Kafka Connect's worker log this way.
log4j2_to_file() {
  cat <<PROPS
appender.file.type=File
appender.file.name=file
appender.file.fileName=$1
appender.file.append=true
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=$2
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
PROPS
}

# cluster_id prints the cluster id every node of this mode is formatted with: the
# one in a node's existing meta.properties, else the one saved for the cluster,
# else a new one (saved, so that the three `StorageTool format` calls share it).
cluster_id() {
  local java_cp="$KAFKA_LIBS/*" f s id=
  f="$INFRA_DIR/kafka-cluster.id"
  [ "$KAFKA_NODES" = 1 ] && f="$INFRA_DIR/kafka/cluster.id"
  for s in "${KAFKA_SERVERS[@]}"; do
    [ -f "$INFRA_DIR/$s/data/meta.properties" ] && id=$(sed -n 's/^cluster.id=//p' "$INFRA_DIR/$s/data/meta.properties") && break
  done
  [ -n "$id" ] || { [ -f "$f" ] && id=$(cat "$f"); }
  [ -n "$id" ] || id=$(java -cp "$java_cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
  [ -n "$id" ] || die "kafka: could not make a cluster id"
  mkdir -p "$(dirname "$f")"
  echo "$id" >"$f"
  echo "$id"
}

# launch_kafka starts Kafka node $1 (formatting its storage first if new) and
# returns without waiting: the nodes of a cluster need each other's quorum to
# finish starting, so they start in parallel and are waited for afterwards.
launch_kafka() {
  local name=$1 dir="$INFRA_DIR/$1" java_cp="$KAFKA_LIBS/*" port s
  for s in "${OTHER_KAFKA_SERVERS[@]}"; do
    [ -z "$(pid_of "$s")" ] || die "$s is running (KAFKA_NODES=$([ "$s" = kafka ] && echo 1 || echo 3)); stop it first: $0 down"
  done
  [ -f "$KAFKA_LIBS/.complete" ] || die "Kafka jars are missing; run: $0 install"
  mkdir -p "$dir"
  write_kafka_config "$name" "$dir"
  port=$(port_of "$name")
  port_open "$port" && die "$name: port $port is taken by another process"
  port=$(controller_port_of "$name")
  port_open "$port" && die "$name: controller port $port is taken by another process (KAFKA_CONTROLLER_PORT)"
  if [ ! -f "$dir/data/meta.properties" ]; then
    log "$name: formatting storage in $dir/data"
    java -cp "$java_cp" -Dlog4j2.configurationFile="$dir/log4j2.properties" kafka.tools.StorageTool format \
      -t "$(cluster_id)" -c "$dir/server.properties" >>"$dir/$name.out" 2>&1 \
      || die "$name: storage format failed; see $dir/$name.out"
  fi
  stat -c %s "$dir/$name.log" 2>/dev/null >"$dir/.log-offset" || echo 0 >"$dir/.log-offset"
  # shellcheck disable=SC2086 # KAFKA_HEAP holds several flags
  setsid java $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$java_cp" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/$name.out" 2>&1 &
  echo $! >"$(pidfile_of "$name")"
}

# ---------------------------------------------------------------- commands

# cmd_start starts the given servers that are not running: Kafka nodes all at
# once and first (their JVMs start while the databases do), databases one after
# the other (the nodes of a database cluster as its start needs, then its
# proxy), then waits until each is ready.
cmd_start() {
  local name family started=() ordered=() members
  for name in "$@"; do known_server "$name"; refuse_other_mode "$name"; done
  for name in "$@"; do is_kafka "$name" && ordered+=("$name"); done
  for name in "$@"; do
    is_kafka "$name" || is_db_node "$name" || is_db_proxy "$name" || [ "$name" = connect ] || ordered+=("$name")
  done
  for name in "${ordered[@]}"; do
    if [ -n "$(pid_of "$name")" ]; then
      log "$name already running (pid $(pid_of "$name"))"
      is_kafka "$name" || setup_db "$name" "$INFRA_DIR/$name/mysqld.sock"
      [ -z "$(binlog_flags "$name")" ] || binlog_on "$name" \
        || die "$name runs without the binary log ORDER_OUTBOX_RELAY=debezium needs: restart it ($0 stop $name, then up)"
      continue
    fi
    if is_kafka "$name"; then launch_kafka "$name"; else start_db "$name"; fi
    started+=("$name")
  done
  for family in order-db payment-db; do
    members=()
    for name in "$@"; do
      if { is_db_node "$name" || is_db_proxy "$name"; } && [ "$(family_of "$name")" = "$family" ]; then members+=("$name"); fi
    done
    [ ${#members[@]} -eq 0 ] || start_family "$family" "${members[@]}"
  done
  for name in "${started[@]}"; do
    is_kafka "$name" && wait_for "$name" 90
    log "$name up on 127.0.0.1:$(port_of "$name") (pid $(pid_of "$name"))"
  done
  # Kafka Connect last: it needs Kafka for its topics and the order database
  # for its connector.
  for name in "$@"; do
    [ "$name" = connect ] || continue
    if [ -n "$(pid_of connect)" ]; then log "connect already running (pid $(pid_of connect))"
    else launch_connect
    fi
    wait_connect 120
    log "connect up on 127.0.0.1:$CONNECT_PORT (pid $(pid_of connect)), connector order-outbox running"
  done
  return 0
}

# refuse_other_mode dies if a database server of another DB_NODES mode than
# server $1's runs for the same service (the modes share the service's port).
refuse_other_mode() {
  local other
  is_kafka "$1" && return 0
  for other in "${OTHER_DB_SERVERS[@]}"; do
    [ "$(family_of "$other")" = "$(family_of "$1")" ] && [ -n "$(pid_of "$other")" ] \
      && die "$other is running (DB_NODES=$(mode_of "$other")); stop it first: $0 down"
  done
  return 0
}

mode_of() {
  case "$1" in
    order-db | payment-db) echo 1 ;;
    *-primary | *-replica) echo 2 ;;
    *-proxy) echo "2 or 3" ;;
    *) echo 3 ;;
  esac
}

# cmd_stop stops the given servers gracefully: SIGTERM, then a wait (30 s, then
# SIGKILL). Kafka nodes and single servers go down together: one by one, the
# last Kafka nodes would wait for a controller quorum that is already gone.
# Galera nodes go down one after the other, so that the last one knows it holds
# everything and the cluster starts again from it.
cmd_stop() {
  local name together=()
  for name in "$@"; do is_galera_node "$name" || together+=("$name"); done
  stop_together "${together[@]}"
  for name in "$@"; do is_galera_node "$name" && stop_together "$name"; done
  return 0
}

stop_together() {
  local name pid pids=() names=()
  for name in "$@"; do
    pid=$(pid_of "$name")
    [ -n "$pid" ] || continue
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid") names+=("$name")
  done
  local i deadline=$((SECONDS + 30))
  for i in "${!pids[@]}"; do
    while kill -0 "${pids[$i]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "${pids[$i]}" 2>/dev/null; then log "${names[$i]} did not stop within 30 s; killing"; kill -9 "${pids[$i]}" 2>/dev/null || true; fi
    rm -f "$(pidfile_of "${names[$i]}")"
    log "${names[$i]} stopped"
  done
}

# cmd_down stops every server of every mode: the proxies and Kafka, then the
# databases; it also removes what `isolate` left.
cmd_down() {
  local name
  cmd_stop connect
  cmd_stop order-db-proxy payment-db-proxy kafka kafka-1 kafka-2 kafka-3
  cmd_stop payment-db order-db payment-db-replica order-db-replica payment-db-primary order-db-primary \
    payment-db-3 payment-db-2 payment-db-1 order-db-3 order-db-2 order-db-1
  if command -v nft >/dev/null 2>&1; then
    for name in order-db-1 order-db-2 order-db-3 payment-db-1 payment-db-2 payment-db-3; do
      nft list table inet "$(isolation_table "$name")" >/dev/null 2>&1 && heal "$name"
    done
  fi
  return 0
}

cmd_kill() {
  local name=$1 pid
  [ $# -le 1 ] || { for name in "$@"; do cmd_kill "$name"; done; return; }
  pid=$(pid_of "$name")
  [ -n "$pid" ] || { log "$name is not running"; return 0; }
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  log "$name killed (kill -9 $pid)"
}

cmd_signal() { # cmd_signal <SIG> <server>
  local pid
  pid=$(pid_of "$2")
  [ -n "$pid" ] || die "$2 is not running"
  kill -"$1" "$pid"
}

cmd_status() {
  local name pid state detail
  for name in "${SERVERS[@]}" "${OTHER_DB_SERVERS[@]}" "${OTHER_KAFKA_SERVERS[@]}"; do
    pid=$(pid_of "$name")
    # The other modes' servers are listed only when running (e.g. a cluster
    # started with KAFKA_NODES=3, seen by a plain `make infra-status`).
    if ! known_server_quiet "$name" && [ -z "$pid" ]; then continue; fi
    detail=
    if [ -z "$pid" ]; then state=down
    elif [ "$(ps -o stat= -p "$pid" | cut -c1)" = T ]; then state=paused
    else
      state=up
      if is_galera_node "$name"; then detail=" $(galera_state "$name")"
      elif is_db_proxy "$name"; then detail=" writes to $(writer_of "$name")"
      fi
    fi
    printf '%-18s %-7s pid=%-8s 127.0.0.1:%s%s\n' "$name" "$state" "${pid:--}" "$(port_of "$name")" "$detail"
  done
}

# cmd_ports prints each port the servers of this mode listen on (a Kafka node's
# client and controller ports, a database node's client and replication ports),
# with whether the server is running; prereqs.sh checks that the ports of the
# servers still to start are free. It dies if two servers would share a port.
cmd_ports() {
  local name state port lines=()
  for name in "${SERVERS[@]}"; do
    state=down
    [ -z "$(pid_of "$name")" ] || state=up
    if is_db_node "$name"; then
      for port in $(node_ports "$name"); do lines+=("$name $port $state"); done
      continue
    fi
    lines+=("$name $(port_of "$name") $state")
    if is_kafka "$name"; then lines+=("$name $(controller_port_of "$name") $state"); fi
  done
  port=$(printf '%s\n' "${lines[@]}" | awk '{print $2}' | sort | uniq -d | head -1)
  [ -z "$port" ] || die "port $port would be used twice: choose ORDER_DB_PORT, PAYMENT_DB_PORT and KAFKA_PORT further apart"
  printf '%s\n' "${lines[@]}"
}

# cmd_config prints the file server $1 starts with: a Kafka node's
# server.properties, a database node's my.cnf, a proxy's haproxy.cfg.
cmd_config() {
  local tmp file
  known_server "$1"
  tmp=$(mktemp -d)
  if is_kafka "$1"; then write_kafka_config "$1" "$tmp"; file=server.properties
  elif is_db_node "$1"; then write_node_config "$1" "$tmp"; file=my.cnf
  elif is_db_proxy "$1"; then write_proxy_config "$1" "$tmp"; file=haproxy.cfg
  else rm -rf "$tmp"; die "$1 starts with flags only (no file): see start_db in $0"
  fi
  sed "s|$tmp|$INFRA_DIR/$1|g" "$tmp/$file"
  rm -rf "$tmp"
}

main() {
  local cmd=${1:-}
  shift || true
  case "$cmd" in
    install) cmd_install ;;
    up)
      cmd_install
      # A connector left from a Debezium run would send the forwarder's rows a second time.
      if [ "$ORDER_OUTBOX_RELAY" != debezium ] && [ -n "$(pid_of connect)" ]; then
        log "stopping connect: ORDER_OUTBOX_RELAY is not debezium (the service's forwarder relays the outbox)"
        cmd_stop connect
      fi
      cmd_start "${SERVERS[@]}" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    start) cmd_start "${@:?server}" ;;
    stop) cmd_stop "${@:?server}" ;;
    kill) cmd_kill "${@:?server}" ;;
    pause) cmd_signal STOP "${1:?server}" ;;
    resume) cmd_signal CONT "${1:?server}" ;;
    pid) pid_of "${1:?server}" ;;
    config) cmd_config "${1:?server}" ;;
    ports) cmd_ports ;;
    writer) known_server "${1:?db}-proxy"; writer_of "$1-proxy" ;;
    compose-connect) compose_connect "${1:?directory}" ;;
    isolate) known_server "${1:?server}"; isolate "$1" ;;
    heal) known_server "${1:?server}"; heal "$1" ;;
    *) sed -n '2,/^set -euo pipefail/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || exit 2 ;;
  esac
}

main "$@"
