// Package poison is the tooling for a service's poison topic: list what was
// poisoned and why, a page at a time, show one message, dry-run and replay
// one or a page of them to the consumer that poisoned them (a page only with
// the confirmation token of its dry run), and purge. It also reaches the
// service's parked outbox rows (package outbox/parking) and parked keys
// (package consumer/parkkey), with a dry run of each before its replay (what
// a row's replay would send and whether Kafka would take it now; what a key's
// release would change, its queue run through the handler in a transaction
// that is rolled back), so that one Tool serves every admin action.
// Its HTTP endpoints are package poisonhttp, its command line poisoncli; this
// package imports neither Echo nor a flag parser.
//
// Guarantees: every call reads a bounded range of the topic by offset, never
// the whole topic (ADR 52); a replay goes to the consumer's delayed path in
// the service's database (delayed.Redeliver), recorded in poison_replays in
// the same transaction, so only that consumer group sees it again. Replaying
// is safe to repeat: a replayed message keeps its id, so the consumer's inbox
// drops it if it was processed meanwhile.
//
// Needs: Kafka (sarama) for the topic, the service's database with
// Migrations applied for the replay records.
//
// Fails: ErrNotFound for an offset never written, ErrGone for one purged,
// ErrTimeout when a read does not finish within ReadTimeout,
// ErrConfirmationRequired and ErrSetChanged for a bulk replay without its dry
// run's token or with another set's; Kafka's and the database's errors
// otherwise.
package poison
