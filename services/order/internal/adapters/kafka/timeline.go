// Package kafka is the order service's Kafka inbound adapter: it turns the
// payment service's events into the application's typed commands (inbound.go)
// and every message on the saga's topics into order timeline entries
// (timeline.go). It holds no business rule; the application decides.
package kafka

import (
	"context"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/pkg/causation"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// The names of the timeline projections. A projection's Kafka consumer group is
// the service's group, ".", and its name (e.g. "order-service.timeline-3"), and
// Kafka keeps each group's committed offsets under that name: renaming a
// projection makes it read its topic again from the start, under a new group.
// These names are therefore fixed for good, whatever order the projections are
// listed in. (They were once derived from positions in a list; these are the
// names that derivation gave, which deployed systems hold offsets for.)
const (
	ProjectionOrders        = "timeline-1"
	ProjectionPayments      = "timeline-2"
	ProjectionOrderPoison   = "timeline-3"
	ProjectionPaymentPoison = "timeline-4"
)

// TimelineTopics names the topics the order timeline reads.
type TimelineTopics struct {
	// Orders and Payments are the saga's event topics.
	Orders, Payments string
	// OrderPoison and PaymentPoison are the two services' poison topics.
	OrderPoison, PaymentPoison string
}

// Projection is one projection to register with the consumer: its fixed name
// (see the Projection* constants), the topic it reads, and its handler.
type Projection struct {
	Name  string
	Topic string
	// Poison says whether Topic is a poison topic (its entries are marked poisoned).
	Poison  bool
	Handler func(msg *message.Message) error
}

// TimelineRecorder is the use case the projections call (*app.Service implements it).
type TimelineRecorder interface {
	RecordTimeline(ctx context.Context, e app.TimelineEntry) error
}

// TimelineProjections returns the four projections of the order timeline, each
// by its fixed name: orders, payments, the order service's poison topic and the
// payment service's poison topic.
func TimelineProjections(topics TimelineTopics, uc TimelineRecorder) []Projection {
	p := func(name, topic string, poison bool) Projection {
		return Projection{Name: name, Topic: topic, Poison: poison, Handler: TimelineProjection(uc, topic, poison)}
	}
	return []Projection{
		p(ProjectionOrders, topics.Orders, false),
		p(ProjectionPayments, topics.Payments, false),
		p(ProjectionOrderPoison, topics.OrderPoison, true),
		p(ProjectionPaymentPoison, topics.PaymentPoison, true),
	}
}

// TimelineProjection returns a projection handler for one topic: it turns every
// message that names an order (the events.MetadataKey metadata) and has a Kafka
// position into a timeline entry, whatever its payload, so that malformed and
// poisoned messages show up too, and hands it to uc.RecordTimeline. Other
// messages are skipped. poison says whether topic is a poison topic. uc's
// errors are returned: the projection retries them.
func TimelineProjection(uc TimelineRecorder, topic string, poison bool) func(msg *message.Message) error {
	return func(msg *message.Message) error {
		orderID := msg.Metadata.Get(events.MetadataKey)
		partition, offset, at, ok := kafka.Position(msg)
		if orderID == "" || !ok {
			return nil
		}
		attempts, _ := strconv.Atoi(msg.Metadata.Get(causation.MetadataCausationAttempts))
		e := app.TimelineEntry{
			OrderID: orderID, Topic: topic, Partition: partition, Offset: offset, At: at.UTC().Truncate(time.Microsecond),
			EventID: msg.UUID, EventType: msg.Metadata.Get(events.MetadataType),
			CorrelationID:    middleware.MessageCorrelationID(msg),
			CausedBy:         msg.Metadata.Get(causation.MetadataCausationID),
			CausedByAttempts: attempts,
			ReplayedAt:       msg.Metadata.Get(failure.MetadataReplayedAt),
		}
		if poison {
			// Only the public code: the error text (reason_poisoned) stays on the
			// poison topic, for the admin tooling.
			e.Poisoned = &app.Poisoned{ReasonCode: msg.Metadata.Get(failure.MetadataReasonCode),
				FromTopic: msg.Metadata.Get(middleware.PoisonedTopicKey)}
		}
		return uc.RecordTimeline(msg.Context(), e)
	}
}
