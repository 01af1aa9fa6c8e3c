// Package requeue is the "requeue" failure strategy of the consumer stack
// (package consumer): retry in place, then store the message on the
// consumer's delayed path (package delayed, a table in the service's own
// database) and go on with the partition; the consumer gets it again after a
// growing delay (InitialDelay, times Multiplier, up to MaxDelay), through its
// whole stack, and only this consumer group sees it. After MaxRequeues
// requeues it is poisoned, with a reason that says so and the last error.
// Progress over order, with automatic recovery from bugs that heal within the
// delays.
//
// Guarantees: a message is acknowledged only once its copy is stored; on the
// delayed path the copy is written in the polling transaction that deletes
// the row being handled, so both commit or neither does. Permanent errors are
// poisoned at once; outages and interrupted shutdowns are never requeued (the
// message is nacked). Needs: package consumer and package delayed (its
// migrations). Fails: if the copy cannot be stored, an outage nacks the
// message and any other failure poisons it.
package requeue
