// Package diagnose answers, for one Kafka key (an order id), what holds its
// messages inside one service: a consumer the stop strategy stopped, the key
// parked by a park-key consumer, its outbox row parked behind a refused row,
// or its row still waiting in the outbox. Each answer (a Hold) names the
// command and the admin endpoint that resolve it. A service's diagnosis
// endpoints combine these with what they know of their own domain.
//
// Guarantees: every probe is bounded: the parked tables are read by their
// key index, the outbox by its primary key over at most OutboxScanLimit rows
// (the oldest), and the consumers' health is read from memory. Nothing is
// locked or changed.
//
// Needs: a MariaDB database with the outbox, outbox/parking and
// consumer/parkkey migrations applied, and the service's consumer health
// (consumer.Consumers.Health), whose stopped consumers are *stop.StoppedError.
//
// Fails: Holds returns the database's error; it never guesses.
package diagnose
