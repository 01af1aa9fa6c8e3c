package events

import (
	"context"
	"database/sql"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Outbox is where encoded events are written inside a database transaction
// (outbox.Outbox satisfies it).
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
