// Package delayed is a consumer's delayed path: a table in the service's own
// database (consumer_requeue) holding messages to be delivered again to one
// consumer (consumer group and handler) once their delay is over, and the
// Watermill subscriber that polls it (ADR 32). The consumer stack
// (package consumer) gives every consumer a second router handler reading its
// delayed path, behind the same middleware and inbox as its Kafka handler.
// The requeue strategy stores failing messages there with a growing delay; a
// poison replay (Redeliver) stores one due at once, so that only the consumer
// group that poisoned it sees it again.
//
// Guarantees: a row is deleted in the same transaction as the
// acknowledgement of its delivery, and a row is handed out again only after
// its delivery ended (no ack deadline; see NewSubscriber for the bound).
// What a handler writes in the polling transaction (the requeue strategy's
// next copy) commits with that delete, or neither does.
//
// Needs: a MariaDB database with Migrations applied, watermill-sql v4 and
// Watermill's delay component; no Kafka client.
//
// Fails: a database error fails the poll (retried after a second) or the
// store (returned to the caller).
package delayed
