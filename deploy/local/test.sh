#!/usr/bin/env bash
# `make test`, step by step (ADR 0065). What a fresh machine lacks (the lint
# tools, MariaDB, Galera, HAProxy, Kafka's and Kafka Connect's jars, promtool, Chromium,
# Schemathesis) installs in the background from the first step on: mostly
# downloads, while the first steps (vet, builds, unit tests) keep the CPU
# busy. The lint step waits for its tools (lint.sh takes turns), the steps that
# need a server for every install. Each step's time is printed, and a summary
# at the end.
#
#   FUZZTIME_TEST  fuzzing per target (the Makefile passes its default)
set -euo pipefail
cd "$(dirname "$0")/../.."

LOG_PREFIX="make test"
# shellcheck source=lib.sh
. deploy/local/lib.sh

mkdir -p build
install_log=build/test-installs.log

# installs runs every installer of the repository once; each one is
# idempotent, and apt_install makes their apt-get calls take turns. One that
# fails does not stop the others.
installs() {
  local failed=0
  deploy/local/lint.sh install || failed=1
  deploy/local/infra.sh install || failed=1
  DB_NODES=3 deploy/local/infra.sh install || failed=1
  ORDER_OUTBOX_RELAY=debezium deploy/local/infra.sh install || failed=1
  command -v nft >/dev/null 2>&1 || apt_install nftables || failed=1
  deploy/local/observe.sh install || failed=1
  deploy/local/chromium.sh >/dev/null || failed=1
  deploy/local/schemathesis.sh >/dev/null || failed=1
  return "$failed"
}

start=$SECONDS
installs >"$install_log" 2>&1 &
installs_pid=$!
cross_pid=
summary=()
current=
# finish prints the steps' times, also when one failed: which step, after how
# long, is the first thing to read in a red CI log.
finish() {
  local rc=$?
  kill "$installs_pid" $cross_pid 2>/dev/null || true
  if [ "$rc" -ne 0 ] && [ -n "$current" ]; then
    summary+=("$(printf '%-17s %5d s  FAILED' "$current" $((SECONDS - step_t0)))")
    log "step $current failed after $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s:"
  else
    log "every step passed in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s:"
  fi
  printf '  %s\n' "${summary[@]}" >&2
}
trap finish EXIT

step_t0=
step() {
  current=$1
  step_t0=$SECONDS
  shift
  log "$current"
  "$@"
  summary+=("$(printf '%-17s %5d s' "$current" $((SECONDS - step_t0)))")
  current=
}

# wait_installs waits for the background installs. A failed one is reported
# and the steps go on: each installs what it needs again and, under CI=true,
# fails with the installer's own message if it still cannot.
wait_installs() {
  if wait "$installs_pid"; then
    log "installs done ($install_log)"
  else
    log "an install failed; the steps that need it will try again. Its log ($install_log) ends:"
    tail -n 20 "$install_log" >&2
  fi
}

m() { make --no-print-directory "$@"; }

# The cross builds for Windows and macOS only compile, and the integration
# tests mostly wait for their servers: they run at the same time.
cross_log=build/test-cross.log
start_cross() {
  m cross >"$cross_log" 2>&1 &
  cross_pid=$!
}
wait_cross() {
  wait "$cross_pid" || { log "make cross failed; its log ($cross_log):"; cat "$cross_log" >&2; return 1; }
}

step tidy go mod tidy -diff
step vet go vet ./...
step vet-faults go vet -tags faults ./...
step lint m lint
step check-generated m check-generated
step test-unit m test-unit
step fuzz env FUZZTIME="${FUZZTIME_TEST:?}" deploy/local/fuzz.sh
step wait-installs wait_installs
step test-alerts m test-alerts
start_cross
step test-integration m test-integration
step cross wait_cross
step e2e m e2e SCENARIO=
