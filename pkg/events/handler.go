package events

import (
	"context"
	"database/sql"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Handler adapts a use case that takes a decoded event into a Watermill
// consumer handler. A message that does not decode (Decode) returns its
// permanent *DecodeError, which a consumer stack sends to the poison queue at
// once; otherwise handle gets the event and the message context (which, behind
// messaging's inbox, carries the transaction repositories join).
func Handler(handle func(ctx context.Context, e Event) error) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		e, err := Decode(msg)
		if err != nil {
			return err
		}
		return handle(msg.Context(), e)
	}
}

// Outbox is where encoded events are written inside a database transaction
// (messaging.Outbox satisfies it).
type Outbox interface {
	Publish(ctx context.Context, tx *sql.Tx, topic string, msgs ...*message.Message) error
}

// Write encodes evts (EncodeAll) and writes them to outbox for the Kafka topic,
// as part of tx. Nothing is written if one fails to encode; the error of the
// outbox (e.g. an event over its size bounds) is returned as is.
func Write(ctx context.Context, outbox Outbox, tx *sql.Tx, topic string, evts ...Event) error {
	if len(evts) == 0 {
		return nil
	}
	msgs, err := EncodeAll(evts)
	if err != nil {
		return err
	}
	return outbox.Publish(ctx, tx, topic, msgs...)
}
