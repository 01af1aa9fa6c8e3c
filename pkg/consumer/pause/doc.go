// Package pause is the "pause" failure strategy of the consumer stack
// (package consumer): on an outage (failure.IsUnavailable: the database down)
// the consumer pauses instead of retrying each message. Every partition holds
// its message unacknowledged at the consumer's gate, one prober pings the
// dependency with backoff, and when it answers the held messages are handled
// again, in order. Outages are not retried in place. Any other failure is
// retried and poisoned as with consumer.Poison.
//
// Guarantees: a held message is never acknowledged nor poisoned; the graceful
// shutdown releases the held messages unacknowledged (ADR 35). The strategy
// owns its probers: Run returns once they ended. Needs: package consumer.
// Fails: never; a message stays held for as long as the outage lasts.
package pause
