// Package audit is a delivery auditor that runs in production: it turns the
// fault suite's invariants into evidence a service finds in its own data,
// counted as onceflow_audit_violations_total{check, scope} for alert rules.
// A service gives it Checks; each reads forward from its cursor (for
// example the ledger's last id) and names what broke a promise (an order
// charged twice). Run is one pass of every check; a service runs it as a
// periodic job.
//
// Guarantees: a violation is counted on evidence only, never on a timeout,
// so an outage is silent; each subject is counted once, durably (a row of
// audit_violations), so the count survives restarts and every replica
// exports the same total. A pass reads each check batch after batch until
// the check has judged all it can now (at most 100 batches); then
// onceflow_audit_checked_timestamp_seconds{check} is the pass's start, so
// everything written before it, less the check's settle time, is judged. A
// check that must wait to judge what it read (ErrPending) ends its pass
// without moving that time. Several replicas may run passes at once (the
// inserts are idempotent and a cursor only moves forward). It writes only
// its own tables.
//
// Needs: a MariaDB database with Migrations applied, and a Prometheus
// registry.
//
// Fails: New fails on an invalid Config. Run returns the first check's error
// after running the others; the failed check's cursor stays, so the next
// pass reads the same rows again. The counters keep their last values while
// the database does not answer.
package audit
