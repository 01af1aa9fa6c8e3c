#!/bin/sh
# HAProxy's health check of a database node (external-check, ADR 0060), called
# as: dbcheck.sh <proxy address> <proxy port> <node address> <node port>.
# Exit 0 (route to it) only if the node may take writes:
#   - a Galera node: Synced (wsrep_local_state 4) and ready (wsrep_ready ON):
#     not a node that is joining, donating a full copy, or outside the primary
#     component (which refuses queries anyway);
#   - any other server: not read-only (a replica is read-only until promoted).
# It logs in as onceflow_check, a user without privileges: SHOW reads what it needs.
out=$(mariadb --no-defaults --connect-timeout=2 -h "$3" -P "$4" -u onceflow_check -N -B -e "
  SHOW GLOBAL VARIABLES WHERE Variable_name IN ('read_only', 'wsrep_on');
  SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state', 'wsrep_ready')" 2>/dev/null) || exit 1
case "$out" in
*"wsrep_on	ON"*)
  case "$out" in *"wsrep_local_state	4"*) ;; *) exit 1 ;; esac
  case "$out" in *"wsrep_ready	ON"*) exit 0 ;; esac
  exit 1
  ;;
*"read_only	OFF"*) exit 0 ;;
esac
exit 1
