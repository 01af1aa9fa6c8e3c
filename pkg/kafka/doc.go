// Package kafka is the Kafka adapter every other part shares, on Watermill's
// watermill-kafka and sarama: the producer and consumer settings (Config),
// publishers that connect lazily and are synchronous with acks=all and
// idempotence (NewPublisher, NewPoisonPublisher, and PublishBatch for a batch
// in one request), a consumer-group subscriber that waits for Kafka
// (NewSubscriber), the message key convention (MetadataKey, Marshaler),
// topics created at start (Topics, EnsureTopics), consumer lag (LagReader),
// where a consumed message sits (Position), and which refusals of a record
// retrying can never fix (UnfixableReason).
//
// Guarantees: a publish returns nil only once every in-sync replica has the
// record; the messages of one key go to one partition, in order; a consumer
// group without a committed offset starts from the oldest message; nothing
// here fails because Kafka is unreachable at start: it is tried again.
//
// Needs: Kafka 3.x brokers (the protocol version is sarama's V3_6_0_0).
//
// Fails: a publish with Kafka's error (UnfixableReason says whether to give
// up on the record); EnsureTopics and a subscription retry until Kafka
// answers or their context ends. A batch refused by one of sarama's own
// circuit breakers (fixed at 10 s open) makes PublishBatch connect a new
// producer for the next batch, so a relay is not held back 10 s after an
// outage ends.
package kafka
