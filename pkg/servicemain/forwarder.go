package servicemain

import (
	"database/sql"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/outbox/parking"
)

// NewForwarder returns a service's outbox forwarder: m.Outbox's settings,
// reading the outbox of db and publishing to out, woken by ob's commits,
// behind m.Breaker (fail fast while Kafka keeps refusing, ADR 35), with
// parking (a refusal of one of topics as unknown parks the row, ADR 22), and
// telling onForwarded what Kafka acknowledged.
func NewForwarder(m messaging.Config, db *sql.DB, ob *outbox.Outbox, out message.Publisher, topics *kafka.Topics,
	onForwarded func(n int), logger watermill.LoggerAdapter, opts ...outbox.Option) (*outbox.Forwarder, error) {
	parked, err := parking.New(parking.Config{DB: db, Outbox: ob, TopicCreated: topics.Created, Logger: logger})
	if err != nil {
		return nil, err
	}
	c := m.Outbox
	c.DB, c.Publisher, c.Logger, c.Outbox = db, out, logger, ob
	c.Breaker, c.TopicCreated, c.OnForwarded, c.Parking = m.Breaker, topics.Created, onForwarded, parked.Publisher
	return outbox.NewForwarder(c, opts...)
}
