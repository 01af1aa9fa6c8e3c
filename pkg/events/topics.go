package events

// Kafka topics of the saga. Every message on them is keyed by order id, so the
// events of one order stay on one partition and are consumed in the order they
// were produced (see ADR 0007).
const (
	// TopicOrders carries the order service's events: OrderPlaced, OrderCancelled.
	TopicOrders = "orders"
	// TopicPayments carries the payment service's events: PaymentCompleted,
	// PaymentFailed, PaymentRefunded, PaymentRefundFailed.
	TopicPayments = "payments"
	// TopicOrderPoison receives what the order service's consumer could not process.
	TopicOrderPoison = "order.poison"
	// TopicPaymentPoison receives what the payment service's consumer could not process.
	TopicPaymentPoison = "payment.poison"
)

// TopicSpec describes how a topic is created.
type TopicSpec struct {
	Name       string
	Partitions int32
	// Config holds topic-level settings (e.g. "retention.ms"), set when the topic
	// is created and re-applied to an existing topic at each start.
	Config map[string]string
}

// PoisonRetentionMs is the retention of the poison topics: -1, unlimited. A
// poisoned message is an unresolved problem; it leaves the topic only when a
// person purges it (poison purge), never by silently expiring (ADR 0025).
const PoisonRetentionMs = "-1"

// PoisonTopicSpec is the spec of a poison topic: one partition (small, read by
// people and tools) and unlimited retention (PoisonRetentionMs).
func PoisonTopicSpec(name string) TopicSpec {
	return TopicSpec{Name: name, Partitions: 1, Config: map[string]string{"retention.ms": PoisonRetentionMs}}
}

// DefaultPartitions is the partition count of the event topics: the upper bound on
// consumer parallelism per service (one message in flight per partition).
const DefaultPartitions = 6

// Topics lists every topic the system needs, with its partition count and
// settings. Event topics keep the broker's retention (7 days by default), which
// bounds how late a redelivery can come (ADR 0025); poison topics are
// PoisonTopicSpec.
func Topics() []TopicSpec {
	return []TopicSpec{
		{Name: TopicOrders, Partitions: DefaultPartitions},
		{Name: TopicPayments, Partitions: DefaultPartitions},
		PoisonTopicSpec(TopicOrderPoison),
		PoisonTopicSpec(TopicPaymentPoison),
	}
}
