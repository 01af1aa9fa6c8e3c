// Package skip is the "log and skip" failure strategy of the consumer stack
// (package consumer): retry in place, then log the message at ERROR with its
// full context (handler, topic, partition, offset, key, message id, event
// type, correlation id, attempts, reason code, error; attribute
// alert=message_skipped), count it and acknowledge it. The message's effect is
// lost on purpose: pick it only for effects that can be lost or redone from the
// log.
//
// Guarantees: outages and interrupted shutdowns are never skipped
// (consumer.GivesUpOn): those messages come back. Needs: package consumer.
// Fails: never; a skipped message is acknowledged.
package skip
