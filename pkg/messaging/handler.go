package messaging

import (
	"context"
	"database/sql"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/events"
)

// EventHandler adapts a use case that takes a decoded event into a consumer
// handler. A message that does not decode (events.Decode) returns its permanent
// *events.DecodeError, which the consumer stack sends to the poison queue at once;
// otherwise handle gets the event and the message context, which carries the
// inbox's transaction for repositories to join.
func EventHandler(handle func(ctx context.Context, e events.Event) error) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		e, err := events.Decode(msg)
		if err != nil {
			return err
		}
		return handle(msg.Context(), e)
	}
}

// PublishEvents encodes evts (events.Encode) and stores them in the outbox for the
// Kafka topic, as part of tx (see Publish). Nothing is stored if one fails to encode.
func (o *Outbox) PublishEvents(ctx context.Context, tx *sql.Tx, topic string, evts ...events.Event) error {
	if len(evts) == 0 {
		return nil
	}
	msgs, err := events.EncodeAll(evts)
	if err != nil {
		return err
	}
	return o.Publish(ctx, tx, topic, msgs...)
}
