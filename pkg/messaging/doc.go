// Package messaging is the Watermill plumbing both services share, as small
// parts that a service wires itself (see services/*/internal/service/service.go)
// and that can be taken one at a time:
//
//   - Database (db.go, tx.go, migrate.go): OpenDB, OpenAndMigrate, Migrate (the
//     outbox, inbox and parking tables, then the service's own), InTx with
//     ContextWithTx (repositories join a transaction a caller or the inbox
//     began), RedactDSN. OpenDB's sessions are READ COMMITTED, so InTx needs
//     no SET per transaction (ADR 43). OpenAndMigrate migrates as the
//     migration user of DBConfig.MigrateDSN, then opens the service's pool as
//     its DML-only user (ADR 49).
//   - Kafka (kafka.go, topics.go): KafkaConfig's safe producer and consumer
//     settings, NewPublisher (keyed by MetadataKey, acks=all, idempotent,
//     connecting lazily), NewPoisonPublisher, NewSubscriber (waits for Kafka),
//     EnsureTopics, and Topics, which creates a service's topics once Kafka
//     answers.
//   - Outbox (outbox.go, parking.go, limits.go, wake.go): Outbox.Publish writes
//     events in the caller's transaction, whose commit (InTx) wakes the
//     forwarders; Outbox.NewForwarder relays them to Kafka, polls as a
//     fallback (ADR 43), parks rows Kafka can never take (ADR 22) and stops
//     cleanly.
//   - Consumer stack (consumer.go, errors.go, reason.go, drain.go): Middlewares
//     (recoverer, correlation id, poison queue, retry; ADR 10 and 14), the
//     error kinds (Permanent, IsUnavailable, IsInterrupted), public reason codes,
//     and Consumers, which runs handlers behind that stack and the inbox and
//     drains them on a graceful stop (ADR 24).
//   - Inbox (inbox.go): makes a handler idempotent in the transaction of its
//     effect (ADR 5). Usable as a plain router middleware.
//   - Causation (causation.go): the ids and attempt counts that link an event
//     to the message that caused it (the order timeline reads them).
//   - Retention and jobs (retention.go, jobs.go): Pruner, RetentionConfig's
//     jobs for this package's tables, and Jobs, a ticker per periodic job.
//   - Poison tooling: the subpackage poison (list, show, replay, purge; parked
//     rows).
//
// pkg/lifecycle runs these parts and stops them in ADR 24's order; it does not
// import this package.
//
// The package knows nothing of orders or payments, and does not import
// pkg/events: it needs two metadata conventions (MetadataKey for the Kafka key,
// MetadataEventType for display), which the events follow, and it recognises
// errors by methods (Permanent() bool, ReasonCode() string), which
// events.DecodeError and application errors implement. Services import it
// from their composition root and their adapters; their domain code never
// does. Test-only switches are in faults_enabled.go, compiled only with
// -tags faults (ADR 21).
package messaging
