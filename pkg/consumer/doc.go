// Package consumer is the consumer stack: Consumers run a service's Kafka
// consumers behind Watermill middleware that decides, for each message, how
// often it is tried and what happens when it keeps failing, and they shut
// down gracefully.
//
// Read in this order: consumers.go (Consumers, Run, the router), stack.go
// (the middleware, outermost first), strategy.go (Strategy: Poison and Block
// here, one package per other strategy: skip, stop, pause, requeue,
// parkkey), retry.go, handlertimeout.go, shutdown.go (the drain), gate.go.
//
// Guarantees:
//   - Each service consumer runs its handler inside the inbox's transaction
//     (package inbox): its effect happens once however often the message is
//     delivered.
//   - A failing message is retried in place with backoff and jitter, then
//     handed to the consumer's strategy; no strategy ever gives up on an
//     outage or on work a shutdown interrupted (GivesUpOn): those messages
//     are delivered again.
//   - Drain lets the handlers in flight finish (their contexts are detached
//     from the router's cancellation) and abandons them only at its deadline;
//     Run returns only after the router and every strategy's loop ended.
//   - Every consumer also reads its delayed path (package delayed): requeued
//     messages and poison replays come back through the same stack.
//
// Needs: Kafka (package kafka), the service's database with the inbox's and
// the delayed path's migrations, a publisher for the poison topic.
//
// Fails: Run fails only if the router does; Health fails while a strategy
// that checks health (the stop strategy) has given up on a consumer. Fault
// switches for the test suites are in faults.go, compiled only with -tags
// faults.
package consumer
