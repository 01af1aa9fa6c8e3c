package messaging

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/pkg/sqlqueue"

	"github.com/onceflow/onceflow/pkg/breaker"
	"github.com/onceflow/onceflow/pkg/causation"
	"github.com/onceflow/onceflow/pkg/msgtrace"
	"github.com/onceflow/onceflow/pkg/sqldb"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
)

// OutboxTopic is the SQL "topic" of the outbox: its rows live in the table
// `watermill_outbox` of each service's own database (created by Migrate).
const OutboxTopic = "outbox"

// OutboxConfig configures how the forwarder reads a service's outbox table.
type OutboxConfig struct {
	// BatchSize is how many rows one polling transaction locks and forwards.
	// Larger batches commit less often. With the single relay a batch is
	// forwarded in order and stops at the first row Kafka does not acknowledge;
	// with the batch relay it is one produce request. Default 100 for the batch
	// relay, 10 for the single relay.
	BatchSize int `env:"BATCH_SIZE"`
	// PollInterval is the fallback wait between polls when the outbox is empty.
	// A transaction of this process that wrote outbox rows (InTx) wakes the
	// forwarder when it commits, so the interval bounds only the latency of rows
	// nothing woke it for: written by another replica or process, or left at a
	// restart. Default 100 ms (ADR 0043).
	PollInterval time.Duration `env:"POLL_INTERVAL"`
	// ResendInterval is the wait before retrying a row Kafka refused. Default 500 ms.
	ResendInterval time.Duration `env:"RESEND_INTERVAL"`
	// AckDeadline is how long one polling transaction keeps trying the same row
	// (during a Kafka outage) before it gives up, commits what was forwarded and
	// polls again. Default 10 s.
	AckDeadline time.Duration `env:"ACK_DEADLINE"`
	// Relay is how rows reach Kafka (ADR 44): RelayBatch ("batch", default) sends
	// the rows of one polling transaction with one synchronous batch produce
	// when it commits, and deletes them only if Kafka acknowledged all of them
	// (else the whole batch is sent again); RelaySingle ("single") publishes one
	// row per produce round trip before acknowledging it.
	Relay string `env:"RELAY"`
}

// Defaults returns c with zero fields set to their defaults.
func (c OutboxConfig) Defaults() OutboxConfig {
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
	return c
}

// Validate reports the first invalid field.
func (c OutboxConfig) Validate() error {
	switch {
	case c.BatchSize < 1 || c.BatchSize > 1000:
		return fmt.Errorf("outbox batch size %d is outside 1..1000", c.BatchSize)
	case c.Relay != RelayBatch && c.Relay != RelaySingle:
		return fmt.Errorf("outbox relay %q is neither %q nor %q", c.Relay, RelayBatch, RelaySingle)
	case c.PollInterval <= 0, c.ResendInterval <= 0, c.AckDeadline <= 0:
		return errors.New("outbox poll interval, resend interval and ack deadline must be positive")
	}
	return nil
}

// Outbox writes events into a service's outbox table inside the caller's
// transaction (Publish) and builds the Forwarder that relays them to Kafka. It
// is usable alone: a service that only publishes needs an Outbox, a Forwarder,
// a Kafka publisher (KafkaConfig.NewPublisher) and the tables of Migrate.
type Outbox struct {
	config OutboxConfig
	schema sqlqueue.ReadCommittedSchema
	// offsetsAdapter acknowledges forwarded rows: sqlqueue.DeleteAckedOnly (the fault build may
	// replace it; see ADR 21).
	offsetsAdapter wsql.OffsetsAdapter
	// noParking turns parking off (negative controls only, ADR 22): a row Kafka
	// can never take then blocks the outbox, as before.
	noParking bool
	// topicCreated says whether a destination topic was created by the service
	// (UnfixableReason); nil unless SetTopics was called.
	topicCreated func(topic string) bool
	// forwarderMiddlewares wrap the forwarder's handler, and wrapOut its Kafka
	// publisher (set by the fault build only, ADR 21).
	forwarderMiddlewares []message.HandlerMiddleware
	wrapOut              func(message.Publisher) message.Publisher
	// wrapSend wraps the batch relay's send (fault build only, ADR 21 and 44).
	wrapSend func(func([]batchItem) []error) func([]batchItem) []error
	// afterBatchAck runs after Kafka acknowledged a batch of n messages and
	// before its rows' deletion commits (fault build only).
	afterBatchAck func(n int)
	// breaker guards the forwarder's Kafka publisher when enabled (ADR 35).
	breaker breaker.Config
	stats   ForwarderStats
	// hooks are told what the forwarders forwarded (SetHooks); nil: nobody.
	hooks *Hooks
	// wakers wake this outbox's forwarders after a commit that wrote rows.
	wakers wakers
}

// NewOutbox returns an Outbox for config (zero fields take their defaults). It
// fails if the config is invalid.
func NewOutbox(config OutboxConfig) (*Outbox, error) {
	config = config.Defaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	return &Outbox{
		config:         config,
		schema:         sqlqueue.ReadCommittedSchema{MySQLQueueSchema: wsql.MySQLQueueSchema{SubscribeBatchSize: config.BatchSize}},
		offsetsAdapter: sqlqueue.DeleteAckedOnly{MySQLQueueOffsetsAdapter: wsql.MySQLQueueOffsetsAdapter{DeleteOnAck: true}},
	}, nil
}

// Publish stores msgs, addressed to the Kafka topic, in the outbox as part of tx.
// They become visible to the forwarder only when tx commits, and vanish if it
// rolls back: the state change and its events are one atomic write. The messages'
// UUIDs and metadata survive the forwarder unchanged. Written while a consumer
// handles a message, they also get that message's id and attempt count
// (MetadataCausationID, MetadataCausationAttempts), and the trace context of
// ctx, if it holds a span, as MetadataTraceparent (ADR 0039). An event over the size
// bounds (MaxMetadataValueBytes, MaxMessageBytes) is refused with a Permanent
// error wrapping ErrMessageTooLarge, and nothing is written. When tx is InTx's
// (ctx carries it), its commit wakes this outbox's forwarders (ADR 0043);
// otherwise they find the rows at their next fallback poll.
func (o *Outbox) Publish(ctx context.Context, tx *stdsql.Tx, topic string, msgs ...*message.Message) error {
	sqlPub, err := wsql.NewPublisher(wsql.TxFromStdSQL(tx), wsql.PublisherConfig{SchemaAdapter: o.schema}, nil)
	if err != nil {
		return fmt.Errorf("outbox publisher: %w", err)
	}
	pub := forwarder.NewPublisher(sqlPub, forwarder.PublisherConfig{ForwarderTopic: OutboxTopic})
	for _, m := range msgs {
		m.SetContext(ctx)
	}
	causation.Stamp(ctx, msgs)
	msgtrace.Inject(ctx, msgs) // the trace continues from here (ADR 0039)
	for _, m := range msgs {
		if err := checkSize(m); err != nil {
			return err
		}
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		return fmt.Errorf("writing %d event(s) to the outbox: %w", len(msgs), err)
	}
	o.wakeOnCommit(ctx)
	return nil
}

// wakeOnCommit makes the commit of the InTx transaction ctx carries wake this
// outbox's forwarders; a rollback wakes nobody.
func (o *Outbox) wakeOnCommit(ctx context.Context) { sqldb.OnCommit(ctx, o, o.wakers.signal) }

// SetTopics tells the forwarders built afterwards which topics the service
// creates (Topics.Created): Kafka refusing one of those as unknown, once they
// exist, is a refusal retrying cannot fix, and the row is parked (ADR 22).
// Without it such a refusal is retried, as any other.
func (o *Outbox) SetTopics(created func(topic string) bool) { o.topicCreated = created }

// Forwarder is Watermill's forwarder reading one outbox, with a graceful stop.
// Run it with Run (from the embedded forwarder); stop it with Close, which lets
// the polling transaction finish its batch cleanly: the rows Kafka acknowledged
// are deleted and the transaction commits (ADR 24). Abandon, after Close had its
// time, rolls that transaction back instead (those rows are published again
// after the restart; consumers deduplicate).
type Forwarder struct {
	*forwarder.Forwarder
	abandon context.CancelFunc
}

// Abandon ends the polling transaction the forwarder still holds (it rolls
// back). Call it after Close, when the stop's time is up; it is a no-op once
// the forwarder stopped.
func (f *Forwarder) Abandon() { f.abandon() }

// forwarderCloseTimeout bounds how long Close waits for the row in flight.
const forwarderCloseTimeout = 3 * time.Second

// NewForwarder returns the forwarder reading this outbox from db and publishing
// to out (normally KafkaConfig.NewPublisher). Rows are forwarded one after
// another in commit-offset order and deleted once out acknowledged them. A row out
// refuses is retried until it goes through (nothing lost), unless the refusal is
// one retrying cannot fix (UnfixableReason): then the row is parked, moved in the
// same polling transaction into outbox_parked, and later rows of its Kafka key
// are parked behind it, so that no single row blocks the outbox and no event
// overtakes an earlier one of its key (ADR 22).
// A crash between out's acknowledgement and the delete publishes that row again:
// consumers deduplicate. When the outbox is empty the forwarder waits for a
// commit of this process that wrote rows to it (Publish in InTx) or, at most,
// the poll interval; Close ends that wait at once (ADR 43). db's transactions
// are READ COMMITTED either way: at the session's level on a pool of OpenDB,
// asked for explicitly on any other. It fails only if Watermill refuses the
// configuration.
func (o *Outbox) NewForwarder(db *stdsql.DB, out message.Publisher, logger watermill.LoggerAdapter, middlewares ...message.HandlerMiddleware) (*Forwarder, error) {
	ackDeadline := o.config.AckDeadline
	polling := o.schema
	polling.SessionLevel = sqldb.SessionReadCommitted(db)
	backoff := newWakeBackoff(o.config.PollInterval, time.Second)
	var beginner wsql.Beginner = wsql.BeginnerFromStdSQL(db)
	var relay *batchRelay
	if o.config.Relay == RelayBatch {
		// The commit barrier (ADR 44): the polling transaction's Commit sends the
		// collected batch and commits only if Kafka took all of it.
		relay = o.newBatchRelay(out, logger)
		beginner = batchBeginner{Beginner: beginner, relay: relay}
		out = batchCollector{relay: relay}
	}
	sub, err := wsql.NewSubscriber(beginner, wsql.SubscriberConfig{
		SchemaAdapter:  polling,
		OffsetsAdapter: o.offsetsAdapter,
		PollInterval:   o.config.PollInterval,
		ResendInterval: o.config.ResendInterval,
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
	if o.hooks != nil && relay == nil { // the batch relay counts at its commit
		out = countingPublisher{Publisher: out, hooks: o.hooks} // counts what Kafka acknowledged
	}
	if relay == nil { // the batch relay's breaker guards its send
		out = breaker.Publisher(o.breaker, "forwarder publisher", out, retryableRefusal, logger)
	}
	if !o.noParking {
		out = &parker{out: out, topicCreated: o.topicCreated, outbox: o, logger: logger, stats: &o.stats}
	}
	// Watermill's router cancels the subscription's context on Close, which
	// would roll the polling transaction back mid-batch; detached, the
	// subscriber is closed instead and commits what was forwarded.
	out = msgtrace.Publisher{Publisher: out} // a producer span per row (ADR 0039)
	abandon, cancel := context.WithCancel(context.Background())
	fwd, err := forwarder.NewForwarder(detachedSubscriber{Subscriber: wakingSubscriber{Subscriber: sub, backoff: backoff}, abandon: abandon}, out, logger, forwarder.Config{
		ForwarderTopic: OutboxTopic,
		Middlewares:    append(middlewares, o.forwarderMiddlewares...),
		CloseTimeout:   forwarderCloseTimeout,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	o.wakers.add(backoff)
	return &Forwarder{Forwarder: fwd, abandon: cancel}, nil
}

// Parked is how many rows this process's forwarders have parked since start.
func (o *Outbox) Parked() int64 { return o.stats.Parked.Load() }

// Pending counts the rows still waiting in the outbox of db.
func (o *Outbox) Pending(ctx context.Context, db *stdsql.DB) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+o.schema.MessagesTable(OutboxTopic)).Scan(&n)
	return n, err
}

// SetBreaker puts a circuit breaker configured by c around the Kafka publisher
// of the forwarders built afterwards (nothing if c is not enabled; ADR 35).
func (o *Outbox) SetBreaker(c breaker.Config) { o.breaker = c }
