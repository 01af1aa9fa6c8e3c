#!/usr/bin/env bash
# Starts and stops the two services of `make run` as background processes, with
# their logs in .local/run/. Usage: [KAFKA_NODES=3] deploy/local/run.sh start|stop|status
# The services read their settings from the environment: ORDER_OUTBOX_RELAY=debezium
# (as `make run ORDER_OUTBOX_RELAY=debezium` passes it) makes the order service
# leave its outbox to Debezium, which infra.sh then runs (ADR 0068).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=$repo/.local/run
mkdir -p "$dir"

# Development settings, passed explicitly: the services have no compiled-in
# database credentials (ADR 0026). Override them by exporting the variables.
# Each service migrates as its migration user, then runs as its service user
# (the DML of deploy/dbusers/*-app.sql, table by table, granted by the migration
# user at every start; the users are created by infra.sh, ADR 0049).
# On a Galera cluster (DB_NODES=3) a node applies the other nodes' commits
# just after they commit: the services' sessions wait for that before each
# read (wsrep_sync_wait, set by the driver per session), so that a read on a
# new writer after a failover sees what the old writer committed (ADR 0060).
sync_wait=
if [ "${DB_NODES:-1}" = 3 ]; then sync_wait='?wsrep_sync_wait=1'; fi
export ORDER_DB_DSN=${ORDER_DB_DSN:-orders_app:orders_app@tcp(127.0.0.1:3307)/orders$sync_wait}
export ORDER_DB_MIGRATE_DSN=${ORDER_DB_MIGRATE_DSN:-orders_migrate:orders_migrate@tcp(127.0.0.1:3307)/orders}
export PAYMENT_DB_DSN=${PAYMENT_DB_DSN:-payments_app:payments_app@tcp(127.0.0.1:3308)/payments$sync_wait}
export PAYMENT_DB_MIGRATE_DSN=${PAYMENT_DB_MIGRATE_DSN:-payments_migrate:payments_migrate@tcp(127.0.0.1:3308)/payments}
# The broker list: one node on 9092, or with KAFKA_NODES=3 the cluster of
# `infra.sh` on 9092, 9093 and 9094 (ADR 0045).
case "${KAFKA_NODES:-1}" in
  1) brokers=127.0.0.1:9092 ;;
  3) brokers=127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094 ;;
  *) echo "KAFKA_NODES=${KAFKA_NODES}: 1 or 3"; exit 2 ;;
esac
export ORDER_KAFKA_BROKERS=${ORDER_KAFKA_BROKERS:-$brokers}
export PAYMENT_KAFKA_BROKERS=${PAYMENT_KAFKA_BROKERS:-$brokers}

pid_of() { local f="$dir/$1.pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; return 0; }

start() {
  local name=$1 url=$2
  if [ -n "$(pid_of "$name")" ]; then echo "$name service already running (pid $(pid_of "$name"))"; return; fi
  setsid "$repo/build/bin/$name" </dev/null >>"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
  for _ in $(seq 1 150); do
    curl -fsS "$url" >/dev/null 2>&1 && { echo "$name service up (pid $(pid_of "$name"), log $dir/$name.log)"; return; }
    [ -n "$(pid_of "$name")" ] || { echo "$name service exited; last log lines:"; tail -5 "$dir/$name.log"; exit 1; }
    sleep 0.2
  done
  echo "$name service did not become ready in 30 s; see $dir/$name.log"; exit 1
}

stop() {
  local name=$1 pid
  pid=$(pid_of "$name")
  [ -n "$pid" ] || return 0
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/$name.pid"
  echo "$name service stopped"
}

# seed_demo loads the demo customers (deploy/demo/accounts.sql) into the payment
# database, once the payment service has created its tables, as the payment
# service's user (INSERT IGNORE is DML). Existing accounts are left as they are.
seed_demo() {
  mariadb --no-defaults -h127.0.0.1 -P3308 -upayments_app -ppayments_app payments <"$repo/deploy/demo/accounts.sql" \
    && echo "demo accounts c-1, c-2, c-3, c-poor present (deploy/demo/accounts.sql)"
}

case "${1:-}" in
  start)
    start order http://127.0.0.1:8080/readyz
    start payment http://127.0.0.1:8081/readyz
    seed_demo
    if [ "${ORDER_OUTBOX_RELAY:-}" = debezium ]; then
      echo "the order outbox is relayed by Debezium: Kafka Connect's REST API on http://127.0.0.1:${CONNECT_PORT:-8083}/connectors/order-outbox/status (docs/relays.md)"
    fi
    cat <<'TXT'

onceflow is running: order API on http://127.0.0.1:8080, payment service on :8081.

Place an order (customer c-1 has 10,000.00 EUR):
  curl -s -XPOST localhost:8080/orders -H 'Content-Type: application/json' -d '{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}'
Then read it (status CONFIRMED within about a second):
  curl -s localhost:8080/orders/<id>
A customer who cannot pay (c-poor has 5.00 EUR) ends CANCELLED with a reason:
  curl -s -XPOST localhost:8080/orders -H 'Content-Type: application/json' -d '{"customer_id":"c-poor","amount_cents":1250,"currency":"EUR"}'
All orders of a customer:
  curl -s 'localhost:8080/orders?customer_id=c-1'

Stop the services with `make stop`, the servers with `make infra-down`.
TXT
    ;;
  stop) stop payment; stop order ;;
  status)
    for s in order payment; do
      p=$(pid_of "$s"); printf '%-11s %-7s pid=%s\n' "$s-svc" "$([ -n "$p" ] && echo up || echo down)" "${p:--}"
    done ;;
  *) echo "usage: $0 start|stop|status"; exit 2 ;;
esac
