// Package inbox is the idempotent consumer: a Watermill middleware that
// records each message it lets through in the table processed_messages, keyed
// by (consumer group, message id), in the same database transaction as the
// handler's effect (ADR 5).
//
// Guarantees:
//   - The record commits with the effect, or neither does: a crash or error at
//     any point leaves either both or nothing, and a redelivery repeats or
//     skips as a whole.
//   - A message whose id is already recorded is acknowledged without running
//     the handler.
//   - Two deliveries of one message running at once (two replicas during a
//     rebalance) serialise on the unique key: the second waits and then sees
//     the duplicate.
//
// Unlike Watermill's Deduplicator middleware, nothing is recorded when the
// handler fails, the record survives restarts and is shared by replicas, and
// the key is the message id (which survives the outbox and forwarder), not a
// hash of the payload.
//
// Needs: a MariaDB database with Migrations applied (pkg/sqldb), Watermill's
// message type and pkg/causation. No Kafka client: any Watermill subscriber
// can feed it.
//
// Fails: with the handler's error, or the database's; a message without an id
// with a permanent error (ErrNoMessageID, reason code invalid_event).
// Recorded ids are kept until pruned (package retention): the window must
// outlast every redelivery.
package inbox
