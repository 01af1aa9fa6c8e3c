# shellcheck shell=bash
# Each service's database as more than one server (ADR 0060), sourced by
# infra.sh, which defines the helpers used here (log, die, pid_of, port_open,
# pidfile_of, setup_db, ...) and DB_NODES:
#   3  a three-node MariaDB Galera cluster per service (<db>-1..3) behind
#      HAProxy (<db>-proxy), which routes every connection to one Synced node
#      and moves to another only when that one fails;
#   2  a primary with an asynchronous replica (<db>-primary, <db>-replica)
#      behind HAProxy, which routes to whichever of the two is writable: the
#      set-up of the fault suite's negative control, which fails over from one
#      to the other as a naive failover does and loses what the replica lacked.
# <db> is order-db or payment-db. The proxy listens on the service's database
# port (ORDER_DB_PORT, PAYMENT_DB_PORT: the DSNs do not change); node slot n
# (1..3; the primary is slot 1, the replica slot 2) uses, from that port P:
#   P+100n     clients (and HAProxy's health check)
#   P+100n+10  Galera replication, on the node's own loopback address 127.0.0.(10+n),
#              so that `isolate` can cut one node off with nftables
#   P+100n+20  incremental state transfer (IST), P+100n+30 full state transfer (SST)

GALERA_PROVIDER=/usr/lib/galera/libgalera_smm.so

is_db_node() { case "$1" in order-db-[123] | payment-db-[123] | order-db-primary | payment-db-primary | order-db-replica | payment-db-replica) return 0 ;; esac; return 1; }
is_galera_node() { case "$1" in order-db-[123] | payment-db-[123]) return 0 ;; esac; return 1; }
is_db_proxy() { case "$1" in order-db-proxy | payment-db-proxy) return 0 ;; esac; return 1; }

# family_of prints the database a node or proxy belongs to: order-db or payment-db.
family_of() { case "$1" in order-db*) echo order-db ;; payment-db*) echo payment-db ;; esac; }

family_port() { case "$1" in order-db) echo "$ORDER_DB_PORT" ;; payment-db) echo "$PAYMENT_DB_PORT" ;; esac; }

# slot_of prints a node's slot: 1..3 for a Galera node, 1 for a primary, 2 for a replica.
slot_of() {
  case "$1" in
    *-primary) echo 1 ;;
    *-replica) echo 2 ;;
    *) echo "${1##*-}" ;;
  esac
}

node_port() { echo $(($(family_port "$(family_of "$1")") + 100 * $(slot_of "$1"))); }
galera_port() { echo $(($(node_port "$1") + 10)); }
ist_port() { echo $(($(node_port "$1") + 20)); }
sst_port() { echo $(($(node_port "$1") + 30)); }
node_ip() { echo "127.0.0.$((10 + $(slot_of "$1")))"; }

# db_servers prints the database servers of DB_NODES mode $1, proxies last.
db_servers() {
  case "$1" in
    1) echo order-db payment-db ;;
    2) echo order-db-primary order-db-replica order-db-proxy payment-db-primary payment-db-replica payment-db-proxy ;;
    3) echo order-db-1 order-db-2 order-db-3 order-db-proxy payment-db-1 payment-db-2 payment-db-3 payment-db-proxy ;;
  esac
}

# cluster_nodes prints the nodes of family $1 in this mode.
cluster_nodes() {
  case "$DB_NODES" in
    2) echo "$1-primary $1-replica" ;;
    3) echo "$1-1 $1-2 $1-3" ;;
  esac
}

install_dbcluster() {
  local pkgs=()
  [ "$DB_NODES" = 3 ] && [ ! -f "$GALERA_PROVIDER" ] && pkgs+=(galera-4)
  [ "$DB_NODES" = 3 ] && ! command -v mariadb-backup >/dev/null 2>&1 && pkgs+=(mariadb-backup)
  [ "$DB_NODES" = 3 ] && ! command -v socat >/dev/null 2>&1 && pkgs+=(socat)
  command -v haproxy >/dev/null 2>&1 || pkgs+=(haproxy)
  [ ${#pkgs[@]} -gt 0 ] || return 0
  log "installing ${pkgs[*]} from Debian's packages"
  apt_install "${pkgs[@]}"
}

# ---------------------------------------------------------------- node configuration

# write_node_config writes the my.cnf node $1 starts with into directory $2.
# A file rather than flags: the state transfer scripts Galera runs read it too
# (without it they read /etc/mysql's files).
write_node_config() {
  local name=$1 dir=$2 family n addrs=
  family=$(family_of "$name")
  cat >"$dir/my.cnf" <<CNF
# $name, written by deploy/local/infra.sh (DB_NODES=$DB_NODES, ADR 0060).
[mysqld]
datadir=$dir/data
tmpdir=$dir/tmp
socket=$dir/mysqld.sock
pid-file=$dir/mysqld.pid
log-error=$dir/$name.log
port=$(node_port "$name")
bind-address=127.0.0.1
user=$(id -un)
skip-name-resolve
max-connections=400
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
# Every commit is on disk before the client hears OK, as on the single server.
innodb-flush-log-at-trx-commit=1
# Small: six of these run beside everything else on two cores.
innodb-buffer-pool-size=64M
innodb-log-file-size=32M
CNF
  if is_galera_node "$name"; then
    for n in 1 2 3; do addrs="$addrs${addrs:+,}$(node_ip "$family-$n"):$(galera_port "$family-$n")"; done
    cat >>"$dir/my.cnf" <<CNF
# Galera: what it requires (row events, InnoDB, interleaved auto-increment
# locking), the cluster's members, and this node's own addresses.
binlog-format=ROW
default-storage-engine=InnoDB
innodb-autoinc-lock-mode=2
wsrep-on=ON
wsrep-provider=$GALERA_PROVIDER
wsrep-cluster-name=onceflow-$family
wsrep-cluster-address=gcomm://$addrs
wsrep-node-name=$name
wsrep-node-address=$(node_ip "$name"):$(galera_port "$name")
# gcache holds the recent write sets a rejoining node gets by IST instead of a
# full copy (64 MB: minutes of the fault suite's load).
wsrep-provider-options=gmcast.listen_addr=tcp://$(node_ip "$name"):$(galera_port "$name");ist.recv_addr=$(node_ip "$name"):$(ist_port "$name");gcache.size=64M
# A full state transfer with mariadb-backup (non-blocking on the donor), as root
# over the donor's socket.
wsrep-sst-method=mariabackup
wsrep-sst-auth=root:
wsrep-sst-receive-address=$(node_ip "$name"):$(sst_port "$name")
[sst]
sst-log-archive=0
CNF
  else
    cat >>"$dir/my.cnf" <<CNF
# Asynchronous replication with GTIDs; the replica is read-only until promoted.
server-id=$(slot_of "$name")
log-bin=$dir/data/binlog
binlog-format=ROW
gtid-strict-mode=ON
log-slave-updates=ON
CNF
    if [ "${name##*-}" = replica ]; then echo "read-only=ON" >>"$dir/my.cnf"; fi
  fi
}

# galera_state prints a Galera node's wsrep_local_state_comment (Synced, Donor/Desynced,
# Joining, ...), or nothing if it does not answer; `non-Primary` when it is
# outside the primary component.
galera_state() {
  local dir="$INFRA_DIR/$1" out
  out=$(mariadb --no-defaults --connect-timeout=2 --socket="$dir/mysqld.sock" -uroot -N -B \
    -e "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_status', 'wsrep_local_state_comment')" 2>/dev/null) || return 0
  case "$out" in
    *"wsrep_cluster_status	Primary"*) sed -n 's/^wsrep_local_state_comment\t//p' <<<"$out" ;;
    *) echo non-Primary ;;
  esac
}

# recovered_position prints a node's last committed position (uuid:seqno) after
# a crash, from InnoDB (what Debian's galera_recovery does for systemd): with it,
# the node rejoins by IST instead of a full copy.
recovered_position() {
  local dir="$INFRA_DIR/$1"
  "$(mariadbd_bin)" --defaults-file="$dir/my.cnf" --wsrep-recover --log-error="$dir/recover.log" >/dev/null 2>&1 || true
  sed -n 's/.*WSREP: Recovered position: *\([0-9a-f-]*:-\{0,1\}[0-9]*\).*/\1/p' "$dir/recover.log" | tail -1
}

grastate() { sed -n "s/^$2: *//p" "$INFRA_DIR/$1/data/grastate.dat" 2>/dev/null; }

# launch_db_node starts node $1 (a data dir made first for a new primary or
# Galera bootstrap node) with the extra flags $2... and returns without waiting.
launch_db_node() {
  local name=$1 dir="$INFRA_DIR/$1" port pos
  shift
  mkdir -p "$dir/tmp" "$dir/data"
  write_node_config "$name" "$dir"
  for port in $(node_ports "$name"); do
    port_open "$port" && die "$name: port $port is taken by another process"
  done
  # A Galera joiner gets its data from a donor; everything else starts from its own.
  if [ ! -d "$dir/data/mysql" ] && { ! is_galera_node "$name" || [ "${1:-}" = --wsrep-new-cluster ]; }; then
    log "$name: initialising data dir $dir/data"
    mariadb-install-db --defaults-file="$dir/my.cnf" --auth-root-authentication-method=normal --skip-test-db \
      >"$dir/install.log" 2>&1 || die "$name: mariadb-install-db failed; see $dir/install.log"
  fi
  if is_galera_node "$name" && [ -d "$dir/data/mysql" ] && [ "$(grastate "$name" seqno)" = -1 ]; then
    pos=$(recovered_position "$name")
    [ -z "$pos" ] || set -- "$@" --wsrep-start-position="$pos"
  fi
  setsid "$(mariadbd_bin)" --defaults-file="$dir/my.cnf" "$@" </dev/null >>"$dir/$name.log" 2>&1 &
  echo $! >"$(pidfile_of "$name")"
}

# node_ports prints every port node $1 listens on.
node_ports() {
  node_port "$1"
  if is_galera_node "$1"; then galera_port "$1"; ist_port "$1"; sst_port "$1"; fi
}

# wait_node waits until node $1 answers and, a Galera node, is Synced.
wait_node() {
  local name=$1 deadline=$((SECONDS + $2)) state=
  while [ $SECONDS -lt $deadline ]; do
    [ -n "$(pid_of "$name")" ] || die "$name exited during start-up; see $INFRA_DIR/$name/$name.log"
    if is_galera_node "$name"; then
      state=$(galera_state "$name")
      [ "$state" = Synced ] && return 0
    elif mariadb-admin --no-defaults --socket="$INFRA_DIR/$name/mysqld.sock" -uroot ping >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  die "$name did not become ready${state:+ (last state: $state)} within $2 s; see $INFRA_DIR/$name/$name.log"
}

# bootstrap_node prints the node a Galera cluster that is entirely down starts
# from (with --wsrep-new-cluster), marking it safe to bootstrap if it was not:
# node 1 of a new cluster; else the node that stopped last (safe_to_bootstrap:
# 1); else, after a crash of all three, nothing if each has its saved view
# (gvwstate.dat: started together they restore their primary component), or the
# most advanced node.
bootstrap_node() {
  local family=$1 node best all_views=1
  [ -d "$INFRA_DIR/$family-1/data/mysql" ] || { echo "$family-1"; return; }
  for node in $(cluster_nodes "$family"); do
    [ "$(grastate "$node" safe_to_bootstrap)" = 1 ] && { echo "$node"; return; }
    [ -f "$INFRA_DIR/$node/data/gvwstate.dat" ] || all_views=0
  done
  [ "$all_views" = 1 ] && return 0
  best=$(most_advanced_node "$family") || exit 1
  sed -i 's/^safe_to_bootstrap: 0/safe_to_bootstrap: 1/' "$INFRA_DIR/$best/data/grastate.dat"
  echo "$best"
}

# most_advanced_node prints the stopped node of family $1 with the highest
# position (grastate.dat's seqno, or InnoDB's after a crash), and logs every
# node's position.
most_advanced_node() {
  local family=$1 node best='' best_seqno=-2 pos seqno positions=''
  for node in $(cluster_nodes "$family"); do
    [ -d "$INFRA_DIR/$node/data/mysql" ] || continue
    write_node_config "$node" "$INFRA_DIR/$node"
    seqno=$(grastate "$node" seqno)
    if [ "$seqno" = -1 ]; then
      pos=$(recovered_position "$node")
      seqno=${pos##*:}
    fi
    positions="$positions $node=${seqno:-?}"
    if [ -n "$seqno" ] && [ "$seqno" -gt "$best_seqno" ]; then best=$node best_seqno=$seqno; fi
  done
  [ -n "$best" ] || die "$family: no node has data to start the cluster from; remove $INFRA_DIR/$family-* to start afresh"
  log "$family: positions$positions; starting the cluster from $best"
  echo "$best"
}

# has_primary reports whether a running node of family $1 is in a primary
# component (or does not answer: a paused node, whose state is unknown).
has_primary() {
  local node state
  for node in $(cluster_nodes "$1"); do
    [ -n "$(pid_of "$node")" ] || continue
    state=$(galera_state "$node")
    [ "$state" = non-Primary ] || return 0
  done
  return 1
}

# recover_quorum restarts a Galera cluster whose running nodes are all outside
# the primary component from its most advanced node, as Galera's crash
# recovery prescribes. Letting the stopped nodes rejoin the survivors instead
# loses a commit: a survivor that had received the last write set, but not yet
# learnt that every node had, when the others died drops it, and when they
# rejoin the group takes the survivor's shorter history and gives the node that
# committed it a full copy (ADR 0060).
recover_quorum() {
  local family=$1 node best
  log "$family: no running node is in a primary component; stopping them to restart the cluster from its most advanced node"
  for node in $(cluster_nodes "$family"); do
    [ -z "$(pid_of "$node")" ] || stop_together "$node"
  done
  best=$(most_advanced_node "$family") || exit 1
  for node in $(cluster_nodes "$family"); do
    rm -f "$INFRA_DIR/$node/data/gvwstate.dat"
    [ "$node" = "$best" ] && continue
    sed -i 's/^safe_to_bootstrap: 1/safe_to_bootstrap: 0/' "$INFRA_DIR/$node/data/grastate.dat"
  done
  sed -i 's/^safe_to_bootstrap: 0/safe_to_bootstrap: 1/' "$INFRA_DIR/$best/data/grastate.dat"
}

# start_family starts the requested nodes ($2...) of family $1 that are not
# running, and then its proxy if requested. A Galera cluster that is entirely
# down needs all three; a node of a running cluster joins it.
start_family() {
  local family=$1 name todo=() proxy='' running=0 boot
  shift
  for name in "$@"; do
    if is_db_proxy "$name"; then proxy=$name; continue; fi
    if [ -n "$(pid_of "$name")" ]; then log "$name already running (pid $(pid_of "$name"))"; else todo+=("$name"); fi
  done
  for name in $(cluster_nodes "$family"); do [ -z "$(pid_of "$name")" ] || running=$((running + 1)); done
  if [ ${#todo[@]} -gt 0 ] && [ "$DB_NODES" = 3 ] && [ "$running" -gt 0 ] && ! has_primary "$family"; then
    recover_quorum "$family"
    read -r -a todo <<<"$(cluster_nodes "$family")"
    running=0
  fi
  if [ ${#todo[@]} -gt 0 ] && [ "$DB_NODES" = 3 ] && [ "$running" = 0 ]; then
    [ ${#todo[@]} = 3 ] || die "no node of the $family cluster runs: start all three ($0 start $(cluster_nodes "$family"))"
    boot=$(bootstrap_node "$family")
    if [ -n "$boot" ]; then
      launch_db_node "$boot" --wsrep-new-cluster
      wait_node "$boot" 120
      log "$boot up on 127.0.0.1:$(node_port "$boot") (pid $(pid_of "$boot")), bootstrapped the cluster"
      todo=("${todo[@]/$boot/}")
    fi
  elif [ ${#todo[@]} -gt 0 ] && [ "$DB_NODES" = 2 ] && [ -z "$(pid_of "$family-primary")" ] && [ ${#todo[@]} = 1 ] && [ "${todo[0]}" = "$family-replica" ] && [ ! -d "$INFRA_DIR/$family-replica/data/mysql" ]; then
    die "$family-replica: a new replica needs its primary running first"
  fi
  for name in "${todo[@]}"; do [ -z "$name" ] || launch_db_node "$name"; done
  for name in "${todo[@]}"; do
    [ -n "$name" ] || continue
    # A joiner's first start copies the donor's data (SST): minutes on a busy machine.
    wait_node "$name" 300
    if [ "$DB_NODES" = 2 ] && [ "${name##*-}" = replica ]; then follow_primary "$name"; fi
    log "$name up on 127.0.0.1:$(node_port "$name") (pid $(pid_of "$name"))"
  done
  setup_family "$family"
  if [ -n "$proxy" ]; then
    if [ -n "$(pid_of "$proxy")" ]; then log "$proxy already running (pid $(pid_of "$proxy"))"; else start_proxy "$proxy"; fi
  fi
}

# setup_family creates the users (setup_db) through one running node that takes
# writes: Galera replicates CREATE USER and GRANT to every node (total order
# isolation), a primary's binary log to its replica.
setup_family() {
  local node
  for node in $(cluster_nodes "$1"); do
    [ -n "$(pid_of "$node")" ] || continue
    is_galera_node "$node" && [ "$(galera_state "$node")" != Synced ] && continue
    [ "${node##*-}" = replica ] && continue
    setup_db "$node" "$INFRA_DIR/$node/mysqld.sock"
    return 0
  done
}

# follow_primary points a new replica at its primary (from the first GTID: it
# gets everything, users included) and starts replicating; a replica that has
# replicated before resumes by itself.
follow_primary() {
  local name=$1 family primary
  family=$(family_of "$name")
  primary=$family-primary
  if mariadb --no-defaults --socket="$INFRA_DIR/$name/mysqld.sock" -uroot -N -e "SHOW SLAVE STATUS" | grep -q .; then return 0; fi
  mariadb --no-defaults --socket="$INFRA_DIR/$primary/mysqld.sock" -uroot -e "
    CREATE USER IF NOT EXISTS 'onceflow_repl'@'127.0.0.1' IDENTIFIED BY 'onceflow_repl';
    GRANT REPLICATION SLAVE ON *.* TO 'onceflow_repl'@'127.0.0.1';" || die "$primary: creating the replication user failed"
  mariadb --no-defaults --socket="$INFRA_DIR/$name/mysqld.sock" -uroot -e "
    CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$(node_port "$primary"),
      MASTER_USER='onceflow_repl', MASTER_PASSWORD='onceflow_repl', MASTER_USE_GTID=slave_pos;
    START SLAVE;" || die "$name: starting replication from $primary failed"
}

# ---------------------------------------------------------------- HAProxy

# write_proxy_config writes the haproxy.cfg of proxy $1 into directory $2.
write_proxy_config() {
  local name=$1 dir=$2 family node backup=
  family=$(family_of "$name")
  # shellcheck disable=SC2154 # here: infra.sh's directory, which sources this file
  cat >"$dir/haproxy.cfg" <<CFG
# $name, written by deploy/local/infra.sh (DB_NODES=$DB_NODES, ADR 0060): the
# services' database address, in front of the nodes of $family.
global
    log stdout format raw daemon info
    nbthread 1
    maxconn 2000
    # The health check is a program (dbcheck.sh) that asks the node for its state.
    external-check
    insecure-fork-wanted
    stats socket $dir/haproxy.sock mode 600 level admin

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout check 2s
    # A connection refused by a node that just died is retried on another.
    retries 2
    option redispatch

frontend $family
    bind 127.0.0.1:$(family_port "$family")
    default_backend $family-nodes

backend $family-nodes
    option external-check
    external-check path "/usr/bin:/bin"
    external-check command $here/dbcheck.sh
    # One writer: every connection goes to the server in the one-entry stick
    # table, which changes only when that server goes down. A recovered node
    # does not take the writes back (no ping-pong of writers); "backup" makes
    # the first node the writer of a fresh start.
    stick-table type integer size 1
    stick on int(1)
    # Checked every 2 s, every 0.5 s while changing state; down after 2 failed
    # checks or at once when a connection to it fails, its connections then
    # cut so that no client keeps writing to a node that left.
    default-server inter 2s fastinter 500ms rise 2 fall 2 observe layer4 error-limit 1 on-error mark-down on-marked-down shutdown-sessions
CFG
  for node in $(cluster_nodes "$family"); do
    echo "    server $node 127.0.0.1:$(node_port "$node") check$backup" >>"$dir/haproxy.cfg"
    backup=" backup"
  done
}

start_proxy() {
  local name=$1 dir="$INFRA_DIR/$1" port deadline
  mkdir -p "$dir"
  write_proxy_config "$name" "$dir"
  port=$(family_port "$(family_of "$name")")
  port_open "$port" && die "$name: port $port is taken by another process"
  haproxy -c -q -f "$dir/haproxy.cfg" || die "$name: haproxy refuses $dir/haproxy.cfg"
  setsid haproxy -db -f "$dir/haproxy.cfg" </dev/null >>"$dir/$name.log" 2>&1 &
  echo $! >"$(pidfile_of "$name")"
  # Ready once a connection through it reaches a node (a health check passed).
  deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    [ -n "$(pid_of "$name")" ] || die "$name exited during start-up; see $dir/$name.log"
    mariadb --no-defaults --connect-timeout=2 -h127.0.0.1 -P"$port" -uonceflow -ponceflow -N -e 'SELECT 1' >/dev/null 2>&1 \
      && { log "$name up on 127.0.0.1:$port (pid $(pid_of "$name")), writes to $(writer_of "$name")"; return 0; }
    sleep 0.2
  done
  die "$name routes to no node within 30 s; see $dir/$name.log"
}

# writer_of prints the node proxy $1 sends connections to (asking through it).
writer_of() {
  local port
  port=$(family_port "$(family_of "$1")")
  mariadb --no-defaults --connect-timeout=2 -h127.0.0.1 -P"$port" -uonceflow -ponceflow -N -B \
    -e "SELECT IF(@@wsrep_on, @@wsrep_node_name, IF(@@server_id = 1, 'primary', 'replica'))" 2>/dev/null \
    | sed "s/^primary\$/$(family_of "$1")-primary/; s/^replica\$/$(family_of "$1")-replica/"
}

# ---------------------------------------------------------------- isolation

# isolate cuts Galera node $1 off from the other two with nftables (a table of
# its own, named after its replication port): every packet between its address
# and theirs to or from the cluster's replication and IST ports is dropped, so
# neither side hears the other. It keeps its client port: HAProxy still reaches
# it and sees it leave the primary component.
isolate() {
  local name=$1 family others='' ports='' n
  is_galera_node "$name" || die "$name is not a Galera node (DB_NODES=3)"
  command -v nft >/dev/null 2>&1 || install_nft
  family=$(family_of "$name")
  for n in $(cluster_nodes "$family"); do
    ports="$ports${ports:+, }$(galera_port "$n"), $(ist_port "$n")"
    [ "$n" = "$name" ] || others="$others${others:+, }$(node_ip "$n")"
  done
  as_root nft -f - <<NFT || die "$name: nft refused the rules"
table inet $(isolation_table "$name") {
  chain output {
    type filter hook output priority 0; policy accept;
    ip saddr $(node_ip "$name") ip daddr { $others } tcp dport { $ports } drop
    ip saddr $(node_ip "$name") ip daddr { $others } tcp sport { $ports } drop
    ip saddr { $others } ip daddr $(node_ip "$name") tcp dport { $ports } drop
    ip saddr { $others } ip daddr $(node_ip "$name") tcp sport { $ports } drop
  }
}
NFT
  log "$name isolated from the other nodes of $family"
}

heal() {
  is_galera_node "$1" || die "$1 is not a Galera node (DB_NODES=3)"
  command -v nft >/dev/null 2>&1 || return 0
  as_root nft delete table inet "$(isolation_table "$1")" 2>/dev/null || true
  log "$1 reconnected to the other nodes of $(family_of "$1")"
}

isolation_table() { echo "onceflow_isolate_$(galera_port "$1")"; }

install_nft() {
  log "installing nftables from Debian's packages"
  apt_install nftables
}
