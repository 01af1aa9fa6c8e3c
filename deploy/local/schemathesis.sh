#!/usr/bin/env bash
# Installs Schemathesis (the schema-driven HTTP fuzzer of `make test`, ADR 0047)
# from PyPI into a git-ignored virtual environment and prints the path of its
# `st` command. Idempotent and fast when the pinned version is already there:
# it only checks a stamp file. Needs python3 with the venv module.
#
# Failures (no python3, no venv module, pip cannot reach PyPI) exit 1 with a
# message; the caller decides: the e2e test skips on them unless CI=true.
#
#   SCHEMATHESIS_VENV     where the environment lives (default .local/venv-schemathesis)
#   SCHEMATHESIS_VERSION  the version to install (default: the pin below)
set -euo pipefail

LOG_PREFIX=schemathesis
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# The pinned version: Schemathesis' CLI flags changed between 3.x and 4.x, and the
# e2e test's flags and report parsing are written for 4.x.
PIN=4.32.5
version=${SCHEMATHESIS_VERSION:-$PIN}
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${SCHEMATHESIS_VENV:-$root/.local/venv-schemathesis}
stamp=$venv/.onceflow-schemathesis-$version

# A virtual environment only works where it was made: its scripts start with
# the path of its python. One made through another path (a moved or copied
# checkout, a worktree's symlinked .local) is made again.
if [ -x "$venv/bin/st" ] && ! head -n2 "$venv/bin/st" | grep -qF "$venv/bin/python"; then
  log "$venv was made at another path; making it again"
  rm -rf "$venv"
fi
if [ -f "$stamp" ] && [ -x "$venv/bin/st" ]; then
  echo "$venv/bin/st"
  exit 0
fi

python=$(command -v python3 || true)
[ -n "$python" ] || die "python3 is missing (Debian: apt-get install python3 python3-venv)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
  die "python3 is older than 3.9, which Schemathesis $version needs"

if [ ! -x "$venv/bin/python" ]; then
  log "creating the virtual environment $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
log "installing schemathesis==$version from PyPI into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$version" >&2 ||
  die "pip install schemathesis==$version failed"
"$venv/bin/st" --version >&2 || die "the installed st does not run"
rm -f "$venv"/.onceflow-schemathesis-*
touch "$stamp"
echo "$venv/bin/st"
