#!/usr/bin/env bash
# Installs Debian's chromium if it is missing (the console's browser test drives
# it headless, ADR 0041) and prints its path. Idempotent.
set -euo pipefail

log() { printf 'chromium: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else log "need root (or sudo) to run: $*"; exit 1
  fi
}

find_chromium() { command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true; }

bin=$(find_chromium)
if [ -z "$bin" ]; then
  log "installing chromium from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  bin=$(find_chromium)
fi
[ -n "$bin" ] || { log "chromium is still missing after the install"; exit 1; }
echo "$bin"
