#!/usr/bin/env bash
# Checks what `make run` needs before it installs or starts anything, and says
# what is missing and how to get it on Debian, all at once, instead of failing
# half-way. Usage: [KAFKA_NODES=3] [DB_NODES=3] deploy/local/prereqs.sh
#   Go       at least go.mod's `go` version
#   Java     17 or newer (Kafka 4 brokers need 17; ADR 0055)
#   Maven    only while the Kafka jars are not fetched yet
#   curl     run.sh asks the services' /readyz with it
#   MariaDB  installed, or installable: root, or sudo without a password; with
#            DB_NODES=3 also Galera, mariadb-backup, socat and HAProxy
#   ports    free, for every server and service that is not running yet
# Exits 1 if anything is missing. Also tells how long a first start takes.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
LOG_PREFIX=prereqs
# shellcheck source=deploy/local/lib.sh
. "$here/lib.sh"

problems=()
missing() { problems+=("$1"); }

# version_at_least A B: whether dotted version A >= B.
version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }

check_go() {
  local want have
  want=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$repo/go.mod")
  if ! command -v go >/dev/null 2>&1; then
    missing "Go $want or newer (go.mod): not found. Debian's golang-go is older; take the tarball of
      https://go.dev/dl/ (tar -C /usr/local -xzf go$want.linux-amd64.tar.gz; PATH=\$PATH:/usr/local/go/bin)"
    return
  fi
  # In the module, a Go of 1.21 or later switches to (and may first download) the
  # toolchain go.mod asks for: GOVERSION is the Go that will build.
  if ! have=$(cd "$repo" && go env GOVERSION 2>&1); then
    missing "Go $want or newer (go.mod): $(command -v go) cannot provide it: ${have//$'\n'/ }"
    return
  fi
  have=${have#go}
  have=${have%% *} # "1.26.8 X:experiment" when built with a GOEXPERIMENT
  version_at_least "$have" "$want" || missing "Go $want or newer (go.mod): found $have. Take the tarball of https://go.dev/dl/"
}

check_java() {
  local line major
  if ! command -v java >/dev/null 2>&1; then
    missing "Java 17 or newer (runs the Kafka broker): not found. sudo apt-get install -y openjdk-17-jre-headless"
    return
  fi
  line=$(java -version 2>&1 | head -1)
  major=$(sed -n 's/.*version "\([0-9]*\)\.\{0,1\}\([0-9]*\).*/\1 \2/p' <<<"$line")
  # Java 8 and older call themselves 1.x.
  if [ "${major%% *}" = 1 ]; then major=${major#* }; else major=${major%% *}; fi
  if [ -z "$major" ] || [ "$major" -lt 17 ]; then
    missing "Java 17 or newer (Kafka 4 needs it): \`java -version\` says: $line. sudo apt-get install -y openjdk-17-jre-headless"
  fi
}

check_maven() {
  local libs=${ONCEFLOW_KAFKA_LIBS:-$repo/.local/kafka-libs}
  [ -f "$libs/.complete" ] && return
  command -v mvn >/dev/null 2>&1 ||
    missing "Maven (fetches the Kafka jars from Maven Central, once): not found. sudo apt-get install -y maven"
}

check_mariadb() {
  local pkgs=()
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || pkgs+=(mariadb-server mariadb-client)
  if [ "${DB_NODES:-1}" = 3 ]; then
    [ -f /usr/lib/galera/libgalera_smm.so ] || pkgs+=(galera-4)
    command -v mariadb-backup >/dev/null 2>&1 || pkgs+=(mariadb-backup)
    command -v socat >/dev/null 2>&1 || pkgs+=(socat)
    command -v haproxy >/dev/null 2>&1 || pkgs+=(haproxy)
  fi
  [ ${#pkgs[@]} -gt 0 ] || return 0
  if [ "$(id -u)" -eq 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; then return; fi
  missing "MariaDB${DB_NODES:+ (DB_NODES=$DB_NODES)}: ${pkgs[*]} not installed, and infra.sh cannot install them without root or a
      password-less sudo. sudo apt-get install -y ${pkgs[*]} (then systemctl disable --now mariadb haproxy: infra.sh
      runs its own servers)"
}

check_curl() {
  command -v curl >/dev/null 2>&1 || missing "curl (asks the services whether they are ready): not found. sudo apt-get install -y curl"
}

# check_port complains if something already listens on 127.0.0.1:$2 for $1.
check_port() {
  local who=$1 port=$2 holder=
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 0
  if command -v ss >/dev/null 2>&1; then
    holder=$(ss -Hltnp "sport = :$port" 2>/dev/null | sed -n 's/.*users:((\("[^"]*",pid=[0-9]*\).*/ (held by \1)/p' | head -1)
  fi
  missing "port $port, which $who listens on, is taken$holder: stop that process first (another checkout's servers? run make infra-down there)"
}

check_ports() {
  local server port state svc
  while read -r server port state; do
    [ "$state" = up ] || check_port "$server" "$port"
  done < <("$here/infra.sh" ports)
  # The services' ports: their HTTP_ADDR if set (the services read it), else run.sh's.
  for svc in "order:${ORDER_HTTP_ADDR:-:8080}" "payment:${PAYMENT_HTTP_ADDR:-:8081}"; do
    "$here/run.sh" status | grep -q "^${svc%%:*}-svc *up" || check_port "the ${svc%%:*} service" "${svc##*:}"
  done
}

check_go
check_java
check_maven
check_mariadb
check_curl
check_ports

if [ ${#problems[@]} -gt 0 ]; then
  log "make run needs these first (nothing was installed or started):"
  for p in "${problems[@]}"; do printf '  - %s\n' "$p" >&2; done
  exit 1
fi

if [ ! -f "${ONCEFLOW_KAFKA_LIBS:-$repo/.local/kafka-libs}/.complete" ] || [ ! -d "${ONCEFLOW_INFRA_DIR:-$repo/.local/infra}" ]; then
  # Measured on 2026-12-07 on two cores (load average 2); apt's MariaDB install not included.
  log "first start: about 2 minutes: the Kafka jars (44 MB from Maven Central) 11 s, both databases"
  log "and Kafka's storage 9 s, the first build of both services (375 MB of Go modules and the"
  log "compile) 77 s; on a busy machine several times that. Later starts: about 5 s, and a build."
fi
