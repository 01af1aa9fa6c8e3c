// Package parkkey is the "park-key" failure strategy of the consumer stack
// (package consumer, ADR 33): a message given up on after its retries is
// parked, with its reason code and full error, as the head of its Kafka key
// (the order id) in a table of the consumer's own database, and acknowledged;
// every later message of that key (same consumer group and handler) is parked
// behind it without running the handler, while other keys flow. Replaying the
// key (Admin.Replay: a mark the running consumers' poller picks up every
// Config.PollInterval) releases its queue in order through the inbox and the
// handler; a message that fails again ends the release and becomes the new
// head. Discarding the head (Admin.Discard) lets the rest of the key flow.
//
// Guarantees: a key has one head; the check "is this key parked?", parking a
// head and every release step serialise on the key's row, so a message never
// joins a queue a release is emptying and two paths that park one key at once
// (the delayed path, or two consumers of a partition during a rebalance)
// cannot both create a head; an outage or a shutdown never parks
// (consumer.GivesUpOn). A key's queue waits for an operator for as long as it
// takes: alert on `poison keys list`.
//
// Needs: package consumer (the Consumer's Handle for releases), a MariaDB
// database with Migrations applied. The strategy owns its poller: Run returns
// once it ended.
//
// Fails: an error reading or writing the parked tables nacks the message (it
// is delivered again); a release interrupted by an outage or a shutdown is
// tried again at the next poll.
package parkkey
