// Package diagnose answers, for one Kafka key (an order id), what holds its
// messages inside one service: a consumer the stop strategy stopped or the
// pause strategy paused, one of its messages being retried in place or
// waiting on a consumer's delayed path (the requeue strategy), the key parked
// by a park-key consumer, its outbox row parked behind a refused row, or its
// row still waiting in the outbox. Each answer (a Hold) names the command and
// the admin endpoint that resolve it. A service's diagnosis endpoints combine
// these with what they know of their own domain.
//
// Guarantees: every probe is bounded: the consumers' state is read from
// memory, the parked tables by their key index, the outbox and the delayed
// path by their primary key over at most OutboxScanLimit rows (the oldest).
// Nothing is locked or changed.
//
// Needs: a MariaDB database with the outbox, outbox/parking, consumer/delayed
// and consumer/parkkey migrations applied, and the service's consumers
// (Consumers: a *consumer.Consumers), whose stopped consumers are
// *stop.StoppedError.
//
// Fails: Holds returns the database's error when the consumers' memory holds
// nothing for the key; otherwise it returns what the memory holds (a paused
// consumer's database is down). It never guesses.
package diagnose
