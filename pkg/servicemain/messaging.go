package servicemain

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/audit"
	"github.com/onceflow/onceflow/pkg/breaker"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/consumer/delayed"
	"github.com/onceflow/onceflow/pkg/consumer/parkkey"
	"github.com/onceflow/onceflow/pkg/consumer/pause"
	"github.com/onceflow/onceflow/pkg/consumer/requeue"
	"github.com/onceflow/onceflow/pkg/consumer/strategies"
	"github.com/onceflow/onceflow/pkg/inbox"
	"github.com/onceflow/onceflow/pkg/jobs"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/metrics"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/outbox/parking"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/retention"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// Messaging is the messaging part of a service's configuration: its database
// (which holds the outbox and the inbox), Kafka, the forwarder, the consumers
// and the retention of the patterns' tables. A service nests it under its own
// environment prefix, e.g. ORDER_DB_DSN, ORDER_KAFKA_BROKERS or
// PAYMENT_OUTBOX_BATCH_SIZE. Zero fields take the defaults of each part; the
// New* functions here build each part's Config from it.
type Messaging struct {
	DB     sqldb.Config         `envPrefix:"DB_"`
	Kafka  kafka.Config         `envPrefix:"KAFKA_"`
	Outbox outbox.Config        `envPrefix:"OUTBOX_"`
	Retry  consumer.RetryConfig `envPrefix:"RETRY_"`
	// Pause configures the pause strategy's prober.
	Pause pause.Config `envPrefix:"PAUSE_"`
	// Breaker configures the circuit breakers of the consumers and the
	// forwarder; off by default.
	Breaker breaker.Config `envPrefix:"BREAKER_"`
	// Requeue shapes the requeue strategy, and Delayed every consumer's
	// delayed path (both REQUEUE_*).
	Requeue requeue.Config `envPrefix:"REQUEUE_"`
	Delayed delayed.Config `envPrefix:"REQUEUE_"`
	// Retention bounds the inbox and the poison replay records.
	Retention retention.Config `envPrefix:"RETENTION_"`
	// ConsumerGroup is the service's Kafka consumer group; it also scopes the
	// inbox. Required.
	ConsumerGroup string `env:"CONSUMER_GROUP"`
	// PoisonTopic receives what the service's consumers give up on. Required.
	PoisonTopic string `env:"POISON_TOPIC"`
	// FailureMode is the failure strategy of the service's consumers: what they
	// do when a message's retries are spent, one of strategies.Modes; default
	// "poison".
	FailureMode strategies.Mode `env:"FAILURE_MODE"`
	// FailureModes gives single consumers another strategy than FailureMode,
	// by consumer (handler) name, e.g.
	// PAYMENT_FAILURE_MODES="payment.order-events:park-key". A name that is not
	// a consumer of the service fails the start.
	FailureModes map[string]strategies.Mode `env:"FAILURE_MODES"`
	// ParkKey configures the park-key strategy.
	ParkKey parkkey.Config `envPrefix:"PARK_KEY_"`
	// HandlerTimeout bounds each attempt of a consumer's handler
	// (consumer.Config.HandlerTimeout). Default 30 s; a negative value turns
	// it off.
	HandlerTimeout time.Duration `env:"HANDLER_TIMEOUT"`
	// Throttle bounds how many messages each consumer takes per period (off by
	// default).
	Throttle consumer.ThrottleConfig `envPrefix:"THROTTLE_"`
	// Audit paces the delivery auditor's checks.
	Audit audit.Settings `envPrefix:"AUDIT_"`
}

// Defaults returns m with zero fields set to their defaults.
func (m Messaging) Defaults() Messaging {
	if m.FailureMode == "" {
		m.FailureMode = strategies.Poison
	}
	m.DB = m.DB.Defaults()
	m.Kafka = m.Kafka.Defaults()
	m.Outbox = m.Outbox.Defaults()
	m.Retry = m.Retry.Defaults()
	m.Pause = m.Pause.Defaults()
	m.Breaker = m.Breaker.Defaults()
	m.Requeue = m.Requeue.Defaults()
	m.Delayed = m.Delayed.Defaults()
	m.Retention = m.Retention.Defaults()
	m.ParkKey = m.ParkKey.Defaults()
	m.Throttle = m.Throttle.Defaults()
	m.Audit = m.Audit.Defaults()
	if m.HandlerTimeout == 0 {
		m.HandlerTimeout = consumer.DefaultHandlerTimeout
	}
	return m
}

// Validate reports every invalid field.
func (m Messaging) Validate() error {
	var errs []error
	errs = append(errs, m.FailureMode.Validate())
	for name, mode := range m.FailureModes {
		if err := mode.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("consumer %s: %w", name, err))
		}
	}
	errs = append(errs, m.consumerConfig().Validate(), m.DB.Validate(), m.Outbox.Validate(), m.Retention.Validate(),
		m.Pause.Validate(), m.Requeue.Validate(), m.ParkKey.Validate(), m.Audit.Validate())
	return errors.Join(errs...)
}

// consumerConfig is the consumer.Config of m's settings, without wiring.
func (m Messaging) consumerConfig() consumer.Config {
	return consumer.Config{ConsumerGroup: m.ConsumerGroup, PoisonTopic: m.PoisonTopic, Retry: m.Retry,
		HandlerTimeout: m.HandlerTimeout, Throttle: m.Throttle, Breaker: m.Breaker, Delayed: m.Delayed, Kafka: m.Kafka}
}

// NewOutbox returns a service's outbox and its relay, by m.Outbox.Relay:
// for "batch" or "single" an outbox and the forwarder of NewForwarder; for
// "debezium" an outbox whose rows Debezium reads from db's binary log
// (outbox.NewForLogTailing) and no relay (nil). It fails if db writes no
// row-based binary log in that mode: the rows would be deleted and their
// events lost. receipts (nil: none) records every write's events in its
// transaction, for the delivery auditor.
func NewOutbox(ctx context.Context, m Messaging, db *sql.DB, out message.Publisher, topics *kafka.Topics,
	onForwarded func(n int), receipts outbox.Receipts, logger watermill.LoggerAdapter, opts ...outbox.Option) (*outbox.Outbox, lifecycle.Forwarder, error) {
	var write []outbox.WriteOption
	if receipts != nil {
		write = append(write, outbox.WithReceipts(receipts))
	}
	if m.Outbox.Relay == outbox.RelayDebezium {
		if err := outbox.CheckBinaryLog(ctx, db); err != nil {
			return nil, nil, err
		}
		return outbox.NewForLogTailing(write...), nil, nil
	}
	ob := outbox.New(write...)
	fwd, err := NewForwarder(m, db, ob, out, topics, onForwarded, logger, opts...)
	if err != nil {
		return nil, nil, err
	}
	return ob, fwd, nil
}

// NewForwarder returns a service's outbox forwarder: m.Outbox's settings,
// reading the outbox of db and publishing to out, woken by ob's commits,
// behind m.Breaker (fail fast while Kafka keeps refusing), with
// parking (a refusal of one of topics as unknown parks the row), and
// telling onForwarded (nil: nobody) what Kafka acknowledged.
func NewForwarder(m Messaging, db *sql.DB, ob *outbox.Outbox, out message.Publisher, topics *kafka.Topics,
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

// NewConsumers returns a service's consumers: m's settings and failure
// strategies (FailureMode, FailureModes), on db, giving up through poison
// (to m.PoisonTopic), creating topics first if not nil, and counting on mx if
// not nil.
func NewConsumers(m Messaging, db *sql.DB, poison message.Publisher, topics *kafka.Topics, mx *metrics.Metrics,
	logger *slog.Logger, opts ...consumer.Option) (*consumer.Consumers, error) {
	m = m.Defaults()
	sc := strategies.Config{Pause: m.Pause, Requeue: m.Requeue, ParkKey: m.ParkKey}
	if mx != nil {
		sc.Skip.OnSkipped = mx.Skipped
	}
	built, err := strategies.Build(m.FailureMode, m.FailureModes, sc)
	if err != nil {
		return nil, err
	}
	c := m.consumerConfig()
	c.DB, c.Poison, c.Topics, c.Logger = db, poison, topics, logger
	c.Strategy, c.Strategies = built.Default, built.ByConsumer
	if mx != nil {
		c.Hooks, c.OnRouter = mx.Hooks(), mx.Router
	}
	return consumer.NewConsumers(c, opts...)
}

// RetainTables registers on j the pruning of the patterns' tables in db (see
// retention.Config.Retain): the inbox after m.Retention.InboxMaxAge, the poison
// replay records after PoisonReplaysMaxAge.
func RetainTables(m Messaging, j *jobs.Jobs, db *sql.DB) {
	c := m.Retention.Defaults()
	c.Retain(j, db, inbox.Table, "processed_at", c.InboxMaxAge)
	c.Retain(j, db, poison.ReplaysTable, "replayed_at", c.PoisonReplaysMaxAge)
}
