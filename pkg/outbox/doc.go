// Package outbox is the transactional outbox and its relay to Kafka: a
// service writes its events into the outbox table in the same database
// transaction as the state change they announce (Outbox.Publish), and a
// forwarder (NewForwarder) publishes the committed rows to Kafka and deletes
// them.
//
// An outbox of NewForLogTailing is for a relay outside the process that tails
// the database's binary log (Debezium, ADR 0068): it deletes each row in the
// transaction that writes it, the log carries the event, and no forwarder
// runs (Config.Relay "debezium"). It needs a row-based binary log with full
// images (CheckBinaryLog) and the generated event_* columns the migrations
// add; the forwarder ignores them.
//
// Read in this order: outbox.go (Publish), forwarder.go (Config,
// NewForwarder), relay.go (the batch relay and its commit barrier), wake.go
// (a commit wakes the forwarder), limits.go (the size bounds), backlog.go.
//
// Guarantees:
//   - An event is in Kafka only if the transaction that wrote it committed,
//     and every committed event reaches Kafka at least once: a row is deleted
//     only after Kafka acknowledged it (the batch relay: every row of the
//     batch), so a crash or an outage at any point publishes it again
//     instead of losing it. Consumers deduplicate (package inbox).
//   - The events of one Kafka key reach Kafka in the order they were written,
//     provided each writer locks the key's aggregate before writing them (the
//     services' repositories do): the forwarder sends rows in insert order,
//     and the batch relay sends a key's later rows only once Kafka took its
//     earlier ones.
//   - Close lets the polling transaction in flight finish cleanly; Abandon
//     rolls it back. The forwarder owns its goroutines (Watermill's router)
//     and they end with Run.
//
// Needs: a MariaDB database with Migrations applied (sqldb), a Watermill
// publisher (pkg/kafka's, for batch produce and keyed partitioning), and
// watermill-sql v4 and Watermill's forwarder component.
//
// Fails: Publish refuses an event over the size bounds (ErrMessageTooLarge,
// permanent) and returns the database's error otherwise; the forwarder never
// fails on a refusal: it retries the row (Config.ResendInterval), and a row
// Kafka can never take holds every row behind it unless Config.Parking (package
// outbox/parking) sets it aside. Fault switches for the test suites are in
// faults.go, compiled only with -tags faults.
package outbox
