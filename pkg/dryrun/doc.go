// Package dryrun runs a consumer's handler on a message, or on a queue of
// messages one after the other (RunQueue, for a parked key), in a database
// transaction that is always rolled back, and reports what the handler would
// have changed: whether it would succeed (or its reason code), the events it
// would emit (read from the outbox inside the transaction, before the
// rollback; none from a handling that fails, which would commit nothing) and
// the state a caller reads before and after it. The poison
// tooling's dry run shows this before an operator replays a message for real.
//
// Guarantees: nothing the handler writes in the transaction survives (the
// inbox's record included), and nothing registered to run after a commit
// (sqldb.OnCommit: a forwarder's wake-up, a saga outcome) runs. Writes the
// handler makes outside the transaction are not caught: a handler that talks
// to other systems must not be dry-run.
//
// Needs: a MariaDB database with the outbox's migrations, and a handler that
// joins the transaction its message's context carries (consumer.Consumers'
// Handler does, through the inbox and sqldb.InTx).
//
// Fails: Run and RunQueue return the database's errors; the handler's own error is a
// result (WouldSucceed false), not a failure of the dry run.
package dryrun
