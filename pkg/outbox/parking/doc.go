// Package parking takes outbox rows that Kafka can never accept out of the
// forwarder's way (ADR 22): a row whose refusal retrying cannot fix (too
// large, an invalid record or topic, a topic deleted behind the service's
// back; kafka.UnfixableReason) is moved, in the forwarder's polling
// transaction, into the table outbox_parked, and every later row of its Kafka
// key is parked behind it, so that one bad row does not hold the outbox and no
// event overtakes an earlier one of its key. An operator lists the parked rows
// and replays (Replay, ReplayAll) or gives up (Discard) the head of a key; the
// key's other rows then follow in order.
//
// Guarantees: a row is parked or forwarded in the same commit that deletes it
// from the outbox, never both and never neither; within one key the rows reach
// Kafka in the order they were written; nothing parked is ever deleted except
// by Discard or by its forwarding after a replay.
//
// Needs: package outbox (the forwarder's Config.Parking slot, and Insert to
// put a released row back), a MariaDB database with Migrations applied,
// watermill-sql, and pkg/kafka's refusal classification.
//
// Fails: an error reading or writing outbox_parked fails the polling
// transaction (the batch is retried); the admin operations return ErrNotFound,
// ErrNotHead or ErrAlreadyReleased for a row in the wrong state.
package parking
