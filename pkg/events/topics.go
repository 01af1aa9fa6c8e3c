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

// DefaultPartitions is the partition count of the event topics: the upper bound on
// consumer parallelism per service (one message in flight per partition).
const DefaultPartitions = 6
