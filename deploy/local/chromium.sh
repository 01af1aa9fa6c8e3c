#!/usr/bin/env bash
# Installs Debian's chromium if it is missing (the console's browser test drives
# it headless, ADR 0041) and prints its path. Idempotent.
set -euo pipefail

LOG_PREFIX=chromium
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

find_chromium() { command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true; }

bin=$(find_chromium)
if [ -z "$bin" ]; then
  log "installing chromium from Debian's packages"
  apt_install chromium
  bin=$(find_chromium)
fi
[ -n "$bin" ] || { log "chromium is still missing after the install"; exit 1; }
echo "$bin"
