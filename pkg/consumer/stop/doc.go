// Package stop is the "stop" failure strategy of the consumer stack (package
// consumer): retry in place like poison, then give up on the whole consumer.
// The failing message is not acknowledged, every partition of the consumer
// holds its next message unprocessed at the consumer's gate, and Health (the
// service's /healthz and /readyz) fails naming the consumer, the message and
// the reason code, so that an orchestrator restarts the process or an
// operator looks. After a restart the message comes again; if it still fails,
// the consumer stops again.
//
// Guarantees: outages and interrupted shutdowns never stop a consumer
// (consumer.GivesUpOn); the graceful shutdown releases the held messages
// unacknowledged (ADR 35). Needs: package consumer. Fails: Health, until the
// process restarts.
package stop
