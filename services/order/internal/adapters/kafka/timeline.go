// Package kafka adapts what passes on the saga's Kafka topics to the order
// service's timeline read model.
package kafka

import (
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// TimelineProjection returns a projection handler for one topic: it records every
// message that names an order (the events.MetadataKey metadata) in the timeline,
// whatever its payload, so that malformed and poisoned messages show up too.
// Messages without an order are skipped. poison says whether topic is a poison
// topic.
func TimelineProjection(tl app.Timeline, topic string, poison bool) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		orderID := msg.Metadata.Get(events.MetadataKey)
		partition, offset, at, ok := messaging.KafkaPosition(msg)
		if orderID == "" || !ok {
			return nil
		}
		attempts, _ := strconv.Atoi(msg.Metadata.Get(messaging.MetadataCausationAttempts))
		e := app.TimelineEntry{
			OrderID: orderID, Topic: topic, Partition: partition, Offset: offset, At: at.UTC().Truncate(time.Microsecond),
			EventID: msg.UUID, EventType: msg.Metadata.Get(events.MetadataType),
			CorrelationID:    middleware.MessageCorrelationID(msg),
			CausedBy:         msg.Metadata.Get(messaging.MetadataCausationID),
			CausedByAttempts: attempts,
			ReplayedAt:       msg.Metadata.Get(messaging.MetadataReplayedAt),
		}
		if e.EventType == "" {
			e.EventType = "unknown"
		}
		if poison {
			// Only the public code: the error text (reason_poisoned) stays on the
			// poison topic, for the admin tooling.
			code := msg.Metadata.Get(messaging.MetadataReasonCode)
			if !messaging.ValidReasonCode(code) {
				code = messaging.ReasonUnclassified
			}
			e.Poisoned = &app.Poisoned{ReasonCode: code, FromTopic: msg.Metadata.Get(middleware.PoisonedTopicKey)}
		}
		return tl.Record(msg.Context(), e)
	}
}
