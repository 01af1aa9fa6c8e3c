package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/breaker"
	"github.com/onceflow/onceflow/pkg/msgtrace"
	"github.com/onceflow/onceflow/pkg/sqldb"
	"github.com/onceflow/onceflow/pkg/sqlqueue"
)

// Config configures a forwarder. The fields with env tags are settings (a
// service reads them as <PREFIX>_OUTBOX_*, e.g. ORDER_OUTBOX_BATCH_SIZE; zero
// takes the default); the others are wiring, set in code.
type Config struct {
	// BatchSize is how many rows one polling transaction locks and forwards.
	// Larger batches commit less often. With the single relay a batch is
	// forwarded in order and ends at the first row Kafka does not acknowledge;
	// with the batch relay it is one produce request. Default 100 for the batch
	// relay, 10 for the single relay.
	BatchSize int `env:"BATCH_SIZE"`
	// PollInterval is the fallback wait between polls when the outbox is empty.
	// A transaction of this process that wrote outbox rows (sqldb.InTx) wakes
	// the forwarder when it commits, so the interval bounds only the latency of
	// rows nothing woke it for: written by another replica or process, or left
	// at a restart. Default 100 ms.
	PollInterval time.Duration `env:"POLL_INTERVAL"`
	// ResendInterval is the wait before retrying a row Kafka refused. Default 500 ms.
	ResendInterval time.Duration `env:"RESEND_INTERVAL"`
	// AckDeadline is how long one polling transaction keeps trying the same row
	// (during a Kafka outage) before it gives up, commits what was forwarded and
	// polls again. Default 10 s.
	AckDeadline time.Duration `env:"ACK_DEADLINE"`
	// Relay is how rows reach Kafka: RelayBatch ("batch", default) sends
	// the rows of one polling transaction with one synchronous batch produce
	// when it commits, and deletes them only if Kafka acknowledged all of them
	// (else the whole batch is sent again); RelaySingle ("single") publishes one
	// row per produce round trip before acknowledging it. RelayDebezium
	// ("debezium") runs no forwarder: Debezium's connector reads the rows from
	// the binary log (a service then writes with NewForLogTailing).
	Relay string `env:"RELAY"`

	// DB is the database holding the outbox table. Required.
	DB *sql.DB `env:"-"`
	// Publisher is where the rows go (kafka.Config.NewPublisher). Required. A
	// publisher with PublishBatch (BatchPublisher), possibly behind wrappers
	// with an Unwrap() message.Publisher method, gets the batch relay's batches
	// in one request; any other gets them one message after another.
	Publisher message.Publisher `env:"-"`
	// Logger gets the forwarder's log lines. Default: none.
	Logger watermill.LoggerAdapter `env:"-"`
	// Outbox is the outbox whose commits wake this forwarder; nil: it polls only.
	Outbox *Outbox `env:"-"`
	// Breaker puts a circuit breaker around the sends to Publisher when
	// enabled: consecutive refusals that retrying may fix open it, and while
	// open a send fails at once (the rows stay).
	Breaker breaker.Config `env:"-"`
	// TopicCreated reports whether a destination topic was created by the
	// service (kafka.Topics.Created): Kafka refusing one of those as unknown
	// is then a refusal retrying cannot fix (kafka.UnfixableReason). nil: such
	// a refusal is retried, as any other.
	TopicCreated func(topic string) bool `env:"-"`
	// OnForwarded, if not nil, is called after Kafka acknowledged n rows (before
	// the polling transaction deletes them: a crash in between publishes, and
	// counts, them again). It must be cheap and must not block.
	OnForwarded func(n int) `env:"-"`
	// Parking, if not nil, wraps the publisher inside the producer span and
	// outside the breaker, in the polling transaction (wsql.TxFromContext of a
	// message's context): package outbox/parking's (*Parking).Publisher takes
	// rows Kafka can never accept out of the way. Without it such a row is
	// retried forever and holds every row behind it.
	Parking func(next message.Publisher) message.Publisher `env:"-"`
}

// Relay modes of the forwarder (Config.Relay).
const (
	// RelayBatch collects the rows of one polling transaction and sends them to
	// Kafka with one synchronous batch produce when that transaction commits;
	// the rows are deleted only if Kafka acknowledged every message, else the
	// transaction rolls back and the whole batch is sent again.
	RelayBatch = "batch"
	// RelaySingle publishes each row synchronously, one produce round trip per
	// event, before the forwarder acknowledges it (Watermill's own behaviour).
	RelaySingle = "single"
	// RelayDebezium is no forwarder in this process: Debezium's MariaDB
	// connector tails the binary log, and its Outbox Event Router sends each
	// row's event (ADR 0068). NewForwarder refuses it.
	RelayDebezium = "debezium"
)

// Defaults returns c with zero settings set to their defaults.
func (c Config) Defaults() Config {
	if c.Relay == "" {
		c.Relay = RelayBatch
	}
	if c.BatchSize == 0 {
		c.BatchSize = 10
		if c.Relay == RelayBatch {
			c.BatchSize = 100
		}
	}
	if c.PollInterval == 0 {
		c.PollInterval = 100 * time.Millisecond
	}
	if c.ResendInterval == 0 {
		c.ResendInterval = 500 * time.Millisecond
	}
	if c.AckDeadline == 0 {
		c.AckDeadline = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
	return c
}

// Validate reports the first invalid setting (the wiring is checked by
// NewForwarder).
func (c Config) Validate() error {
	switch {
	case c.BatchSize < 1 || c.BatchSize > 1000:
		return fmt.Errorf("outbox batch size %d is outside 1..1000", c.BatchSize)
	case c.Relay != RelayBatch && c.Relay != RelaySingle && c.Relay != RelayDebezium:
		return fmt.Errorf("outbox relay %q is not %q, %q or %q", c.Relay, RelayBatch, RelaySingle, RelayDebezium)
	case c.PollInterval <= 0, c.ResendInterval <= 0, c.AckDeadline <= 0:
		return errors.New("outbox poll interval, resend interval and ack deadline must be positive")
	}
	return c.Breaker.Validate()
}

// Forwarder is Watermill's forwarder reading one outbox table, with a
// graceful shutdown. Run it with Run (from the embedded forwarder); end it with
// Close, which lets the polling transaction finish its batch cleanly: the rows
// Kafka acknowledged are deleted and the transaction commits.
// Abandon, after Close had its time, rolls that transaction back instead
// (those rows are published again after the restart; consumers deduplicate).
type Forwarder struct {
	*forwarder.Forwarder
	abandon context.CancelFunc
}

// Abandon ends the polling transaction the forwarder still holds (it rolls
// back). Call it after Close, when the shutdown's time is up; it is a no-op
// once the forwarder ended.
func (f *Forwarder) Abandon() { f.abandon() }

// forwarderCloseTimeout bounds how long Close waits for the row in flight.
const forwarderCloseTimeout = 3 * time.Second

// options are what the fault build's Options change; production
// passes none.
type options struct {
	// relay is Config.Relay, for the options that depend on it.
	relay string
	// offsets acknowledges forwarded rows (sqlqueue.DeleteAckedOnly).
	offsets wsql.OffsetsAdapter
	// middlewares wrap the forwarder's handler, and wrapOut its publisher.
	middlewares []message.HandlerMiddleware
	wrapOut     func(message.Publisher) message.Publisher
	// wrapSend wraps the batch relay's send.
	wrapSend func(send sendFunc) sendFunc
	// afterBatchAck runs after Kafka acknowledged a batch of n messages and
	// before its rows' deletion commits.
	afterBatchAck func(n int)
	// adjustOutbox changes how Config.Outbox writes its rows, and replace, if
	// set, builds the forwarder instead of NewForwarder (the stock relay).
	adjustOutbox func(*Outbox)
	replace      func(c Config) (*Forwarder, error)
}

// Option adjusts a forwarder before it is built. The only ones are the fault
// build's (WithFaults, compiled only with -tags faults).
type Option func(*options)

// NewForwarder returns the forwarder configured by c: it reads the outbox table
// of c.DB and publishes each row to c.Publisher. Rows go in the order they were
// inserted (the table's auto-increment offset), one polling transaction after
// another; the events of one Kafka key keep their order because every writer
// locks the key's aggregate (SELECT ... FOR UPDATE) before it writes them, so
// they are inserted, and committed, in order. A row is deleted once the
// publisher acknowledged it. A refused row is retried until it goes through
// (nothing lost), unless c.Parking takes it out of the way. A crash between the
// acknowledgement and the delete publishes that row again: consumers
// deduplicate. When the outbox is empty the forwarder waits for a commit of
// c.Outbox or, at most, the poll interval; Close ends that wait at once. The
// polling transactions are READ COMMITTED: at the session's level on a pool of
// sqldb.Open, asked for explicitly on any other. It fails on an invalid c, or
// if Watermill refuses the configuration.
func NewForwarder(c Config, opts ...Option) (*Forwarder, error) {
	c = c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.DB == nil || c.Publisher == nil {
		return nil, errors.New("outbox forwarder: DB and Publisher are required")
	}
	if c.Relay == RelayDebezium {
		return nil, errors.New("outbox forwarder: with relay \"debezium\" Debezium relays the outbox, not a forwarder")
	}
	o := options{relay: c.Relay, offsets: sqlqueue.DeleteAckedOnly{MySQLQueueOffsetsAdapter: wsql.MySQLQueueOffsetsAdapter{DeleteOnAck: true}}}
	for _, opt := range opts {
		opt(&o)
	}
	if o.adjustOutbox != nil && c.Outbox != nil {
		o.adjustOutbox(c.Outbox)
	}
	if o.replace != nil {
		return o.replace(c)
	}
	logger := c.Logger
	out := c.Publisher
	ackDeadline := c.AckDeadline
	backoff := newWakeBackoff(c.PollInterval, time.Second)
	beginner := wsql.BeginnerFromStdSQL(c.DB)
	var relay *batchRelay
	if c.Relay == RelayBatch {
		// The commit barrier: the polling transaction's Commit sends the
		// collected batch and commits only if Kafka took all of it.
		relay = newBatchRelay(c, o)
		beginner = batchBeginner{Beginner: beginner, relay: relay}
		out = batchCollector{relay: relay}
	}
	sub, err := wsql.NewSubscriber(beginner, wsql.SubscriberConfig{
		SchemaAdapter:  queueSchema(c.BatchSize, sqldb.SessionReadCommitted(c.DB)),
		OffsetsAdapter: o.offsets,
		PollInterval:   c.PollInterval,
		ResendInterval: c.ResendInterval,
		RetryInterval:  time.Second,
		AckDeadline:    &ackDeadline,
		BackoffManager: backoff, // waits for a commit's wake or the poll interval
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("outbox subscriber: %w", err)
	}
	if o.wrapOut != nil {
		out = o.wrapOut(out)
	}
	if c.OnForwarded != nil && relay == nil { // the batch relay counts at its commit
		out = countingPublisher{Publisher: out, onForwarded: c.OnForwarded}
	}
	if relay == nil { // the batch relay's breaker guards its send
		out = breaker.Publisher(c.Breaker, "forwarder publisher", out, retryableRefusal, logger)
	}
	if c.Parking != nil {
		out = c.Parking(out)
	}
	out = msgtrace.Publisher{Publisher: out} // a producer span per row
	// Watermill's router cancels the subscription's context on Close, which
	// would roll the polling transaction back mid-batch; detached, the
	// subscriber is closed instead and commits what was forwarded.
	abandon, cancel := context.WithCancel(context.Background())
	fwd, err := forwarder.NewForwarder(detachedSubscriber{Subscriber: wakingSubscriber{Subscriber: sub, backoff: backoff}, abandon: abandon}, out, logger, forwarder.Config{
		ForwarderTopic: Topic,
		Middlewares:    o.middlewares,
		CloseTimeout:   forwarderCloseTimeout,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	if c.Outbox != nil {
		c.Outbox.wakers.add(backoff)
	}
	return &Forwarder{Forwarder: fwd, abandon: cancel}, nil
}

// countingPublisher reports every batch its publisher accepted.
type countingPublisher struct {
	message.Publisher
	onForwarded func(n int)
}

// Publish implements message.Publisher.
func (p countingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	p.onForwarded(len(msgs))
	return nil
}

// detachedSubscriber runs a subscription on a context detached from the one
// Subscribe gets, ended only by abandon; when Subscribe's context ends, it
// closes the subscriber instead. For the outbox's SQL subscriber this is the
// difference between a clean and a cut last batch: closed, it stops handing out
// rows, deletes those that were forwarded and commits; cancelled (what the
// router does on Close), its polling transaction is rolled back mid-batch and
// every forwarded row of the batch is published again after the restart.
type detachedSubscriber struct {
	message.Subscriber
	abandon context.Context
}

// Subscribe implements message.Subscriber.
func (s detachedSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopAbandon := context.AfterFunc(s.abandon, cancel)
	ch, err := s.Subscriber.Subscribe(subCtx, topic)
	if err != nil {
		stopAbandon()
		cancel()
		return nil, err
	}
	// Close is idempotent and returns at once when the router already closed the
	// subscriber, so subCtx is not cancelled here: that would cut the closing
	// batch. It ends with abandon.
	context.AfterFunc(ctx, func() { _ = s.Subscriber.Close() })
	return ch, nil
}
