// Package msgtrace carries a W3C trace context through message metadata, so
// that one trace runs from an HTTP request through the outbox, Kafka and the
// consumer that handles the event: Inject stores a span context with the
// messages an outbox writes, Publisher gives each message a producer span as
// it goes to Kafka, and Middleware gives each delivery a consumer span, child
// of the producer's. FailedAttempt and GivenUp record on that span what the
// consumer stack did with the message.
//
// Guarantees: a message without a valid span context gets no metadata; a
// failed publish leaves the message's stored context as it was. Needs:
// OpenTelemetry's API (the process installs a provider; without one, spans are
// no-ops), Watermill, pkg/kafka (the position of a consumed message) and
// pkg/failure (the reason code of a failure). Fails: never.
package msgtrace
