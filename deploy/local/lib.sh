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

# apt_install installs Debian packages without their recommendations. The
# scripts' installs may run at once (make test installs in the background
# while it compiles): a lock file makes them take turns, the package lists are
# fetched at most once an hour, and apt waits for a dpkg lock that anything
# else on the machine holds instead of failing.
apt_install() {
  local lock=${TMPDIR:-/tmp}/onceflow-apt.lock
  # shellcheck disable=SC2016 # expanded by the inner sh, under the lock
  as_root flock "$lock" env DEBIAN_FRONTEND=noninteractive STAMP="$lock.updated" sh -c '
    if [ -z "$(find "$STAMP" -mmin -60 2>/dev/null)" ]; then
      apt-get update -qq -o DPkg::Lock::Timeout=600 && touch "$STAMP"
    fi &&
    apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "$@" >/dev/null' apt_install "$@"
}
