#!/usr/bin/env bash
# Local infrastructure without Docker (ADR 0006): two MariaDB servers and one
# Apache Kafka broker (KRaft, single node), each a plain process that can be
# killed with `kill -9`, paused with SIGSTOP and started again on its own data.
#
# Usage: deploy/local/infra.sh <command> [server]
#   install                  install what is missing (MariaDB via apt, Kafka jars via Maven)
#   up                       install, then start every server that is not running (idempotent)
#   down                     stop every server gracefully (idempotent)
#   status                   one line per server: up/down, pid, port
#   start   <server>         start one server and wait until it accepts connections
#   stop    <server>         stop one server gracefully (SIGTERM, then wait)
#   kill    <server>         kill -9 one server (no clean shutdown)
#   pause   <server>         SIGSTOP one server (it keeps its sockets but answers nothing)
#   resume  <server>         SIGCONT a paused server
#   pid     <server>         print the pid of a running server
# Servers: order-db, payment-db, kafka.
#
# Environment (defaults in brackets):
#   ONCEFLOW_INFRA_DIR    data, logs and pid files            [<repo>/.local/infra]
#   ONCEFLOW_KAFKA_LIBS   the broker's jars                   [<repo>/.local/kafka-libs]
#   ORDER_DB_PORT [3307]  PAYMENT_DB_PORT [3308]  KAFKA_PORT [9092]  KAFKA_CONTROLLER_PORT [9093]
#   KAFKA_HEAP            JVM heap flags                      [-Xms256m -Xmx512m]
#   KAFKA_PROXIED_PORT / KAFKA_PROXIED_ADVERTISED_PORT   optional second listener, for a TCP
#                         proxy in front of the broker: the broker listens on the first port and
#                         tells clients to connect to the second (where the proxy listens)
# Every database server gets its service's database (`orders` on order-db,
# `payments` on payment-db) with that service's migration and service users
# (deploy/dbusers/<server>.sql, ADR 0049), and the user onceflow/onceflow with
# all privileges, grant option included: the development and test superuser
# (the tests create their databases and those databases' users with it), never
# a service's. The set-up runs on every start, also of a server already running,
# so data dirs of earlier versions get the users.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
INFRA_DIR=${ONCEFLOW_INFRA_DIR:-$repo/.local/infra}
KAFKA_LIBS=${ONCEFLOW_KAFKA_LIBS:-$repo/.local/kafka-libs}
ORDER_DB_PORT=${ORDER_DB_PORT:-3307}
PAYMENT_DB_PORT=${PAYMENT_DB_PORT:-3308}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_HEAP=${KAFKA_HEAP:--Xms256m -Xmx512m}
KAFKA_PROXIED_PORT=${KAFKA_PROXIED_PORT:-}
KAFKA_PROXIED_ADVERTISED_PORT=${KAFKA_PROXIED_ADVERTISED_PORT:-}
KAFKA_VERSION=3.9.1
SERVERS=(order-db payment-db kafka)

LOG_PREFIX=infra
# shellcheck source=deploy/local/lib.sh
. "$here/lib.sh"

# ---------------------------------------------------------------- install

install_mariadb() {
  if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then return; fi
  log "installing mariadb-server from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    mariadb-server mariadb-client >/dev/null
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

cmd_install() { install_mariadb; install_kafka; }

# ---------------------------------------------------------------- helpers

mariadbd_bin() { command -v mariadbd 2>/dev/null || echo /usr/sbin/mariadbd; }

port_of() {
  case "$1" in
    order-db) echo "$ORDER_DB_PORT" ;;
    payment-db) echo "$PAYMENT_DB_PORT" ;;
    kafka) echo "$KAFKA_PORT" ;;
    *) die "unknown server '$1' (one of: ${SERVERS[*]})" ;;
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
    if [ "$name" = kafka ]; then
      # Only log lines written after this start count (the log is appended to across restarts).
      port_open "$port" && tail -c "+$((KAFKA_LOG_OFFSET + 1))" "$INFRA_DIR/kafka/kafka.log" 2>/dev/null \
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
  mkdir -p "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    log "$name: initialising data dir $dir/data"
    mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 \
      || die "$name: mariadb-install-db failed; see $dir/install.log"
  fi
  port_open "$port" && die "$name: port $port is taken by another process"
  # innodb_flush_log_at_trx_commit=1: every commit is on disk before the client hears OK.
  setsid "$(mariadbd_bin)" --no-defaults --datadir="$dir/data" --socket="$dir/mysqld.sock" \
    --port="$port" --bind-address=127.0.0.1 --user="$(id -un)" --pid-file="$dir/mysqld.pid" \
    --innodb-flush-log-at-trx-commit=1 --innodb-buffer-pool-size=128M \
    --max-connections=400 --skip-name-resolve --character-set-server=utf8mb4 \
    --collation-server=utf8mb4_unicode_ci --log-error="$dir/$name.log" \
    </dev/null >>"$dir/$name.log" 2>&1 &
  echo $! >"$(pidfile_of "$name")"
  wait_for "$name" 60
  setup_db "$name"
}

# setup_db creates (or keeps) the server's database and users; idempotent.
setup_db() {
  local name=$1 dir="$INFRA_DIR/$1"
  rm -f "$dir/.needs-setup" # the marker of earlier versions, which set up only once
  {
    cat <<SQL
CREATE USER IF NOT EXISTS 'onceflow'@'%' IDENTIFIED BY 'onceflow';
GRANT ALL PRIVILEGES ON *.* TO 'onceflow'@'%' WITH GRANT OPTION;
SQL
    cat "$repo/deploy/dbusers/$name.sql"
  } | mariadb --no-defaults --connect-timeout=10 --socket="$dir/mysqld.sock" -uroot \
    || die "$name: setting up its database and users failed"
}

# ---------------------------------------------------------------- Kafka

write_kafka_config() {
  local dir=$1 listeners advertised
  listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT"
  advertised="PLAINTEXT://127.0.0.1:$KAFKA_PORT"
  if [ -n "$KAFKA_PROXIED_PORT" ]; then
    listeners="$listeners,PROXIED://127.0.0.1:$KAFKA_PROXIED_PORT"
    advertised="$advertised,PROXIED://127.0.0.1:${KAFKA_PROXIED_ADVERTISED_PORT:?needs KAFKA_PROXIED_ADVERTISED_PORT}"
  fi
  cat >"$dir/server.properties" <<PROPS
# Single combined KRaft node (broker + controller), written by deploy/local/infra.sh.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT
log.dirs=$dir/data
# Topics are created explicitly, with the partition counts in pkg/events.
auto.create.topics.enable=false
num.partitions=1
# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
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
  cat >"$dir/log4j.properties" <<PROPS
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/kafka.log
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.storage=WARN
log4j.logger.kafka.coordinator=WARN
PROPS
}

start_kafka() {
  local dir="$INFRA_DIR/kafka" java_cp="$KAFKA_LIBS/*"
  [ -f "$KAFKA_LIBS/.complete" ] || die "Kafka jars are missing; run: $0 install"
  mkdir -p "$dir"
  write_kafka_config "$dir"
  port_open "$KAFKA_PORT" && die "kafka: port $KAFKA_PORT is taken by another process"
  if [ ! -f "$dir/data/meta.properties" ]; then
    log "kafka: formatting storage in $dir/data"
    java -cp "$java_cp" -Dlog4j.configuration="file:$dir/log4j.properties" kafka.tools.StorageTool format \
      -t "$(java -cp "$java_cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)" \
      -c "$dir/server.properties" >>"$dir/kafka.out" 2>&1 || die "kafka: storage format failed; see $dir/kafka.out"
  fi
  KAFKA_LOG_OFFSET=$(stat -c %s "$dir/kafka.log" 2>/dev/null || echo 0)
  setsid java $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$java_cp" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/kafka.out" 2>&1 &
  echo $! >"$(pidfile_of kafka)"
  wait_for kafka 90
}

# ---------------------------------------------------------------- commands

cmd_start() {
  local name=$1
  port_of "$name" >/dev/null
  if [ -n "$(pid_of "$name")" ]; then
    log "$name already running (pid $(pid_of "$name"))"
    [ "$name" = kafka ] || setup_db "$name"
    return
  fi
  case "$name" in
    kafka) start_kafka ;;
    *) start_db "$name" ;;
  esac
  log "$name up on 127.0.0.1:$(port_of "$name") (pid $(pid_of "$name"))"
}

cmd_stop() {
  local name=$1 pid
  pid=$(pid_of "$name")
  [ -n "$pid" ] || return 0
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "$name did not stop within 30 s; killing"; kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$(pidfile_of "$name")"
  log "$name stopped"
}

cmd_kill() {
  local name=$1 pid
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
  local name pid state
  for name in "${SERVERS[@]}"; do
    pid=$(pid_of "$name")
    if [ -z "$pid" ]; then state=down
    elif [ "$(ps -o stat= -p "$pid" | cut -c1)" = T ]; then state=paused
    else state=up
    fi
    printf '%-11s %-7s pid=%-8s 127.0.0.1:%s\n' "$name" "$state" "${pid:--}" "$(port_of "$name")"
  done
}

main() {
  local cmd=${1:-}
  shift || true
  case "$cmd" in
    install) cmd_install ;;
    up) cmd_install; for s in "${SERVERS[@]}"; do cmd_start "$s"; done ;;
    down) for s in kafka payment-db order-db; do cmd_stop "$s"; done ;;
    status) cmd_status ;;
    start) cmd_start "${1:?server}" ;;
    stop) cmd_stop "${1:?server}" ;;
    kill) cmd_kill "${1:?server}" ;;
    pause) cmd_signal STOP "${1:?server}" ;;
    resume) cmd_signal CONT "${1:?server}" ;;
    pid) pid_of "${1:?server}" ;;
    *) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || exit 2 ;;
  esac
}

main "$@"
