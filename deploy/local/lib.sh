# shellcheck shell=bash
# Helpers shared by the scripts of deploy/local (sourced, not run). The sourcing
# script sets LOG_PREFIX first (infra, observe).

# log writes one line to stderr, prefixed with the script's name.
log() { printf '%s: %s\n' "${LOG_PREFIX:-deploy}" "$*" >&2; }

# die logs its arguments and exits with status 1.
die() { log "$*"; exit 1; }

# as_root runs a command as root: directly when root already, else through
# `sudo -n` (never prompts; fails if sudo wants a password); dies without either.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else die "need root (or sudo) to run: $*"
  fi
}
