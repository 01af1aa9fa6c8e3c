// Package breaker puts circuit breakers (sony/gobreaker v1, the version
// Watermill's middleware uses) in front of what a service calls again and
// again: a consumer's handler (Middleware) and a forwarder's publisher
// (Publisher, New). Each breaker counts only the failures its owner says it
// should (an outage for a handler, a refusal retrying may fix for a
// publisher).
//
// Guarantees: a breaker only ever returns an error where the call would have
// failed or was not made; an open breaker's refusal has an `Unavailable() bool`
// method that returns true (failure.IsUnavailable), so a consumer stack never
// gives up on a message because of it. Needs: gobreaker v1 and Watermill.
// Fails: never by itself.
package breaker
