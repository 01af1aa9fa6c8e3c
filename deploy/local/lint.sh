#!/usr/bin/env bash
# The static checks of `make lint` and `make test` (ADR 0061). Each tool is
# pinned and installed into .local if missing (idempotent: a directory per
# version); any finding, or a failed install, exits 1.
#
#   lint.sh [all]       every check below
#   lint.sh golangci    golangci-lint (.golangci.yml), without build tags and with -tags faults
#   lint.sh shell       shellcheck on deploy/**/*.sh and .ci/run (Debian's package)
#   lint.sh vuln        govulncheck against an offline copy of the Go vulnerability
#                       database, built from the golang.org/x/vulndb module
#   lint.sh install     install the tools and the database, check nothing
set -euo pipefail

LOG_PREFIX=lint
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# The pins. golangci-lint and govulncheck are built from source by the Go
# module proxy; VULNDB_VERSION is the vulnerability data's date (a pseudo-
# version of golang.org/x/vulndb): bump it to refresh the data.
GOLANGCI_LINT_VERSION=v2.15.0
GOVULNCHECK_VERSION=v1.9.0
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018

root=$(cd "$(dirname "$0")/../.." && pwd)
tools=$root/.local/tools
cd "$root"

# go_tool installs a Go command at a pinned version into its own directory
# under .local/tools and prints its path.
go_tool() { # name package version
  local dir=$tools/$1-$3
  if [ ! -x "$dir/$1" ]; then
    log "building $2@$3 into $dir"
    GOBIN=$dir.tmp go install "$2@$3" >&2 || { rm -rf "$dir.tmp"; die "go install $2@$3 failed"; }
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir/$1"
}

# vulndb builds the database layout govulncheck reads (index/*.json, ID/*.json)
# from the OSV files that the golang.org/x/vulndb module ships (data/osv), with
# that module's own indexdb command, and prints its directory.
vulndb() {
  local db=$tools/vulndb-$VULNDB_VERSION
  if [ ! -f "$db/index/db.json" ]; then
    local indexdb src
    indexdb=$(go_tool indexdb golang.org/x/vulndb/cmd/indexdb "$VULNDB_VERSION")
    src=$(go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -d "$src/data/osv" ] || die "golang.org/x/vulndb@$VULNDB_VERSION has no data/osv"
    log "indexing $(find "$src/data/osv" -name '*.json' | wc -l) OSV entries into $db"
    rm -rf "$db.tmp"
    "$indexdb" -vulns "$src/data/osv" -out "$db.tmp" >&2 || die "indexdb failed"
    mv "$db.tmp" "$db"
  fi
  echo "$db"
}

shellcheck_bin() {
  if ! command -v shellcheck >/dev/null 2>&1; then
    log "installing shellcheck from Debian's packages"
    apt_install shellcheck
  fi
  command -v shellcheck || die "shellcheck is still missing after the install"
}

cmd_install() {
  go_tool golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION" >/dev/null
  go_tool govulncheck golang.org/x/vuln/cmd/govulncheck "$GOVULNCHECK_VERSION" >/dev/null
  vulndb >/dev/null
  shellcheck_bin >/dev/null
}

cmd_golangci() {
  local bin
  bin=$(go_tool golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION")
  export GOLANGCI_LINT_CACHE=$root/.local/golangci-lint-cache
  log "golangci-lint $GOLANGCI_LINT_VERSION"
  "$bin" run ./...
  log "golangci-lint $GOLANGCI_LINT_VERSION -tags faults"
  "$bin" run --build-tags faults ./...
}

cmd_shell() {
  local bin
  bin=$(shellcheck_bin)
  log "shellcheck ($("$bin" --version | sed -n 's/^version: //p'))"
  local scripts=()
  mapfile -t scripts < <(find deploy -name '*.sh' | sort)
  "$bin" "${scripts[@]}" .ci/run
}

# Findings are accepted only by ID, each with its reason, in vuln-accepted.txt;
# an accepted one is still printed on every run, and one no longer found is
# reported so that the list stays short.
cmd_vuln() {
  local bin db report accepted found
  bin=$(go_tool govulncheck golang.org/x/vuln/cmd/govulncheck "$GOVULNCHECK_VERSION")
  db=$(vulndb)
  report=$(mktemp)
  trap 'rm -f "$report"' RETURN
  log "govulncheck $GOVULNCHECK_VERSION, data of golang.org/x/vulndb@$VULNDB_VERSION"
  local status=0
  "$bin" -db "file://$db" ./... >"$report" 2>&1 || status=$?
  # 0: nothing found; 3: vulnerabilities found (judged below); else: it failed.
  if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then
    cat "$report" >&2
    die "govulncheck failed (exit $status)"
  fi
  found=$(sed -n 's/^Vulnerability #[0-9]*: \(GO-[0-9-]*\)$/\1/p' "$report" | sort -u)
  accepted=$(sed -n 's/^\(GO-[0-9-]*\)[[:space:]].*/\1/p' deploy/local/vuln-accepted.txt | sort -u)
  local new stale
  new=$(comm -23 <(printf '%s\n' "$found" | sed '/^$/d') <(printf '%s\n' "$accepted"))
  stale=$(comm -13 <(printf '%s\n' "$found" | sed '/^$/d') <(printf '%s\n' "$accepted"))
  for id in $found; do
    if grep -q "^${id}[[:space:]]" deploy/local/vuln-accepted.txt; then
      log "accepted: $(grep "^${id}[[:space:]]" deploy/local/vuln-accepted.txt)"
    fi
  done
  for id in $stale; do
    log "$id is in deploy/local/vuln-accepted.txt but no longer found: remove it"
  done
  if [ -n "$new" ]; then
    cat "$report"
    die "govulncheck found vulnerabilities that the code calls: $(echo "$new" | tr '\n' ' ')(fix them, or accept them with a reason in deploy/local/vuln-accepted.txt)"
  fi
  log "govulncheck: no vulnerability that the code calls, beyond $(printf '%s\n' "$found" | sed '/^$/d' | wc -l) accepted"
}

# One lint.sh at a time builds or uses the tools: make test runs `lint.sh
# install` in the background (deploy/local/test.sh) while its lint step may
# already have started.
mkdir -p "$tools"
exec 9>"$tools/.lock"
flock 9

case "${1:-all}" in
  install) cmd_install ;;
  golangci) cmd_golangci ;;
  shell) cmd_shell ;;
  vuln) cmd_vuln ;;
  all) cmd_shell; cmd_golangci; cmd_vuln ;;
  *) die "usage: $0 [all|golangci|shell|vuln|install]" ;;
esac
