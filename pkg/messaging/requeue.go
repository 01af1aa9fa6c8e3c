package messaging

import (
	"context"
	stdsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/onceflow/onceflow/pkg/sqlqueue"

	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/msgtrace"
	"github.com/onceflow/onceflow/pkg/sqldb"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// Metadata keys of a message on a consumer's delayed path (ADR 32).
const (
	// MetadataRequeues is how many times FailureRequeue sent the message to the
	// delayed path; absent (0) on a first delivery and on a poison replay.
	MetadataRequeues = "requeues"
	// MetadataRequeueTopic is the Kafka topic the message was first consumed
	// from; the poisoned copy of a message that failed on the delayed path
	// names it in "topic_poisoned", so that the poison tooling sees the same
	// origin as for a message poisoned straight from Kafka.
	MetadataRequeueTopic = "requeue_topic"
	// MetadataRequeueHandler is the consumer (handler name) the delayed path
	// delivers the message to.
	MetadataRequeueHandler = "requeue_handler"
	// MetadataPoisonedGroup is the consumer group that poisoned a message: a
	// poison replay goes back to that group's delayed path only.
	MetadataPoisonedGroup = "poisoned_group"
)

// RequeueTable is the table of the delayed path in each service database
// (migration 00005): one row per message waiting to be delivered again to one
// consumer (consumer group and handler) of that database, due at delayed_until.
const RequeueTable = "consumer_requeue"

// requeueHandlerSuffix names the router handler of a consumer's delayed path:
// the consumer's name followed by it.
const requeueHandlerSuffix = ".requeued"

// RequeueConfig shapes FailureRequeue (ADR 32): after its in-place retries, a
// failing message is stored on the consumer's delayed path and delivered again
// after InitialDelay, then after growing delays up to MaxDelay, at most
// MaxRequeues times; then it is poisoned. PollInterval also applies to every
// consumer's delayed path, which carries poison replays in every strategy.
type RequeueConfig struct {
	// MaxRequeues bounds how many times one message is requeued before it is
	// poisoned. Default 5; 1..100.
	MaxRequeues int `env:"MAX_REQUEUES"`
	// InitialDelay is the delay before the first requeued delivery. Default 5 s.
	// Delays have a granularity of one second (Watermill's delay metadata is
	// RFC 3339 without fractions), rounded down.
	InitialDelay time.Duration `env:"INITIAL_DELAY"`
	// MaxDelay caps the delay between requeued deliveries. Default 60 s.
	MaxDelay time.Duration `env:"MAX_DELAY"`
	// Multiplier grows the delay after each requeue (a float: 1.5 works).
	// Default 2; at least 1.
	Multiplier float64 `env:"MULTIPLIER"`
	// PollInterval is how often an idle delayed path looks for due messages: it
	// adds up to this much to every delay. Default 1 s.
	PollInterval time.Duration `env:"POLL_INTERVAL"`
}

// Defaults returns c with zero fields set to their defaults.
func (c RequeueConfig) Defaults() RequeueConfig {
	if c.MaxRequeues == 0 {
		c.MaxRequeues = 5
	}
	if c.InitialDelay == 0 {
		c.InitialDelay = 5 * time.Second
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = 60 * time.Second
	}
	if c.Multiplier == 0 {
		c.Multiplier = 2
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	return c
}

// Validate reports the first invalid field.
func (c RequeueConfig) Validate() error {
	switch {
	case c.MaxRequeues < 1 || c.MaxRequeues > 100:
		return fmt.Errorf("requeue: max requeues %d is outside 1..100", c.MaxRequeues)
	case c.InitialDelay < 0 || c.MaxDelay < c.InitialDelay:
		return errors.New("requeue: need 0 <= initial delay <= max delay")
	case c.Multiplier < 1:
		return errors.New("requeue: multiplier must be >= 1")
	case c.PollInterval <= 0:
		return errors.New("requeue: poll interval must be positive")
	}
	return nil
}

// Delay returns the delay before the n-th requeued delivery (n >= 1):
// InitialDelay × Multiplier^(n-1), capped at MaxDelay. It is computed in
// floating point, so a Multiplier of 1.5 grows the delay by half (Watermill's
// DelayOnError truncates its multiplier to an integer).
func (c RequeueConfig) Delay(n int) time.Duration {
	d := float64(c.InitialDelay) * math.Pow(c.Multiplier, float64(max(n-1, 0)))
	if d >= float64(c.MaxDelay) {
		return c.MaxDelay
	}
	return time.Duration(d)
}

// requeueSchema is the delayed path's table as a watermill-sql queue schema: the
// outbox's schema (MySQLQueueSchema polled at READ COMMITTED), on RequeueTable,
// reading only the rows of one consumer group whose delay is over. The
// "topic" is the consumer's handler name.
type requeueSchema struct {
	sqlqueue.ReadCommittedSchema
	group string
}

func requeueTableName(string) string { return "`" + RequeueTable + "`" }

func newRequeueSchema(group string) requeueSchema {
	return requeueSchema{group: group, ReadCommittedSchema: sqlqueue.ReadCommittedSchema{MySQLQueueSchema: wsql.MySQLQueueSchema{
		SubscribeBatchSize:        1,
		GenerateMessagesTableName: requeueTableName,
		GenerateWhereClause: func(p wsql.GenerateWhereClauseParams) (string, []any) {
			// DATETIME(6) in UTC compared with UTC_TIMESTAMP(6): no session time zone involved.
			return "consumer_group = ? AND handler = ? AND delayed_until <= UTC_TIMESTAMP(6)", []any{group, p.Topic}
		},
	}}}
}

// InsertQuery implements wsql.SchemaAdapter: it stores each message for the
// consumer group and handler (the topic), due at its Watermill delay metadata
// (delay.DelayedUntilKey), or now without one.
func (s requeueSchema) InsertQuery(p wsql.InsertQueryParams) (wsql.Query, error) {
	q := wsql.Query{Query: "INSERT INTO `" + RequeueTable + "` (uuid, payload, metadata, consumer_group, handler, delayed_until) VALUES "}
	for i, m := range p.Msgs {
		meta, err := json.Marshal(m.Metadata)
		if err != nil {
			return wsql.Query{}, fmt.Errorf("requeue: metadata of %s: %w", m.UUID, err)
		}
		due := time.Now().UTC()
		if v := m.Metadata.Get(delay.DelayedUntilKey); v != "" {
			if due, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return wsql.Query{}, fmt.Errorf("requeue: delay of %s: %w", m.UUID, err)
			}
		}
		if i > 0 {
			q.Query += ","
		}
		q.Query += "(?,?,?,?,?,?)"
		q.Args = append(q.Args, m.UUID, []byte(m.Payload), string(meta), s.group, p.Topic, due.UTC())
	}
	return q, nil
}

// requeuePublisher returns a publisher that stores messages on the delayed path
// of group, through exec (the database, or a transaction).
func requeuePublisher(exec wsql.ContextExecutor, group string) (message.Publisher, error) {
	pub, err := wsql.NewPublisher(exec, wsql.PublisherConfig{SchemaAdapter: newRequeueSchema(group)}, nil)
	if err != nil {
		return nil, err
	}
	return delay.NewPublisher(pub, delay.PublisherConfig{AllowNoDelay: true})
}

// Redeliver stores msg, as part of tx, on the delayed path of the consumer
// handler of consumer group group (in the database of tx), due now, with its
// requeue count reset and fromTopic as the topic it came from. Once tx commits,
// that consumer's delayed path delivers it through the consumer's whole stack
// (inbox included): only that consumer group sees it, and a message id it has
// processed already is dropped by its inbox. The poison tooling replays with
// it. It fails if the table of migration 00005 is missing or tx fails.
func Redeliver(ctx context.Context, tx *stdsql.Tx, group, handler, fromTopic string, msg *message.Message) error {
	pub, err := requeuePublisher(wsql.TxFromStdSQL(tx), group)
	if err != nil {
		return err
	}
	m := msg.Copy()
	m.SetContext(ctx)
	delete(m.Metadata, MetadataRequeues)
	m.Metadata.Set(MetadataRequeueTopic, fromTopic)
	m.Metadata.Set(MetadataRequeueHandler, handler)
	delay.Message(m, delay.For(0))
	return pub.Publish(handler, m)
}

// requeueCount is how many times msg went to the delayed path already, from
// its MetadataRequeues: 0 if that is missing, not a number or negative (no step
// here writes such a count; a producer's header must not buy a message more than
// MaxRequeues requeues).
func requeueCount(msg *message.Message) int {
	n, err := strconv.Atoi(msg.Metadata.Get(MetadataRequeues))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// requeueStep is FailureRequeue's step, just inside the poison step: a message
// whose in-place retries are spent with an error a strategy may give up on
// (givesUpOn) that is not permanent is stored on the consumer's delayed path
// with its requeue count plus one, due after RequeueConfig.Delay, and then
// acknowledged (so the partition moves on only once the message is stored; on
// the delayed path the copy is written in the transaction that deletes the row
// being handled). A
// message requeued MaxRequeues times already fails with an error saying so and
// wrapping the last one: the poison step poisons it. A permanent error is
// passed on at once (requeuing cannot fix it). If storing fails, the storing
// error is returned joined with the handler's: an outage is nacked (never
// poisoned), anything else is poisoned.
func (cs *Consumers) requeueStep(h consumer) message.HandlerMiddleware {
	c := cs.config.Requeue
	return func(next message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := next(msg)
			if err == nil || !givesUpOn(err) || failure.IsPermanent(err) {
				return out, err
			}
			n := requeueCount(msg)
			if n >= c.MaxRequeues {
				return nil, fmt.Errorf("requeued %d times (the bound), giving up: %w", n, err)
			}
			m := msg.Copy()
			m.SetContext(context.WithoutCancel(msg.Context()))
			m.Metadata.Set(MetadataRequeues, strconv.Itoa(n+1))
			m.Metadata.Set(MetadataRequeueTopic, h.topic)
			m.Metadata.Set(MetadataRequeueHandler, h.name)
			d := c.Delay(n + 1)
			delay.Message(m, delay.For(d))
			// On the delayed path the copy joins the polling transaction, which
			// deletes the row being handled when it commits: both or neither.
			var exec wsql.ContextExecutor = wsql.BeginnerFromStdSQL(cs.inbox.DB)
			if tx, ok := wsql.TxFromContext(msg.Context()); ok {
				exec = tx
			}
			pub, perr := requeuePublisher(exec, cs.config.ConsumerGroup)
			if perr == nil {
				perr = pub.Publish(h.name, m)
			}
			if perr != nil {
				return nil, errors.Join(fmt.Errorf("requeue: storing message %s: %w", msg.UUID, perr), err)
			}
			msgtrace.GivenUp(msg, "requeued", failure.ReasonCode(err))
			cs.logger.WarnContext(msg.Context(), "consumer: message requeued", "handler", h.name, "message_id", msg.UUID,
				"requeues", n+1, "max_requeues", c.MaxRequeues, "delay", d.String(), "err", err)
			return nil, nil
		}
	}
}

// addRequeueHandler adds the delayed path of consumer h to router: a second
// handler, named h's name plus ".requeued", reading h's rows of RequeueTable
// (requeued by FailureRequeue, or replayed from the poison topic) and running
// h behind the same middleware as h's Kafka handler, inbox included. Every
// consumer has one, whatever its strategy.
func (cs *Consumers) addRequeueHandler(router *message.Router, h consumer, mws []message.HandlerMiddleware) error {
	schema := newRequeueSchema(cs.config.ConsumerGroup)
	schema.SessionLevel = sqldb.SessionReadCommitted(cs.inbox.DB) // no SET per poll (ADR 0043)
	sub, err := wsql.NewSubscriber(wsql.BeginnerFromStdSQL(cs.inbox.DB), wsql.SubscriberConfig{
		SchemaAdapter:  schema,
		OffsetsAdapter: sqlqueue.DeleteAckedOnly{MySQLQueueOffsetsAdapter: wsql.MySQLQueueOffsetsAdapter{DeleteOnAck: true, GenerateMessagesTableName: requeueTableName}},
		PollInterval:   cs.config.Requeue.PollInterval,
		ResendInterval: time.Second,
		RetryInterval:  time.Second,
	}, cs.wlog)
	if err != nil {
		return fmt.Errorf("consumer %s: delayed path: %w", h.name, err)
	}
	rh := router.AddConsumerHandler(h.name+requeueHandlerSuffix, h.name, sub, h.handler)
	rh.AddMiddleware(mws...)
	return nil
}

// poisonOrigin wraps the poison publisher of a consumer group: every poisoned
// message gets MetadataPoisonedGroup, and one poisoned on a delayed path
// names its original Kafka topic and consumer in "topic_poisoned" and
// "handler_poisoned" (instead of the delayed path's table and handler).
type poisonOrigin struct {
	message.Publisher
	group string
	hooks *Hooks // told about each message poisoned
}

// Publish implements message.Publisher.
func (p poisonOrigin) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		m.Metadata.Set(MetadataPoisonedGroup, p.group)
		msgtrace.GivenUp(m, "poisoned", m.Metadata.Get(failure.MetadataReasonCode))
		if from := m.Metadata.Get(MetadataRequeueTopic); from != "" && m.Metadata.Get(middleware.PoisonedHandlerKey) != "" {
			m.Metadata.Set(middleware.PoisonedTopicKey, from)
			m.Metadata.Set(middleware.PoisonedHandlerKey, m.Metadata.Get(MetadataRequeueHandler))
		}
	}
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	for _, m := range msgs {
		reason := m.Metadata.Get(failure.MetadataReasonCode)
		if !failure.ValidReasonCode(reason) {
			reason = failure.ReasonUnclassified
		}
		p.hooks.poisoned(reason)
	}
	return nil
}
