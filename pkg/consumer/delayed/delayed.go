package delayed

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/sqldb"
	"github.com/onceflow/onceflow/pkg/sqlqueue"
)

// Metadata keys of a message on a consumer's delayed path.
const (
	// MetadataRequeues is how many times the requeue strategy sent the
	// message to the delayed path; absent (0) on a first delivery and on a
	// poison replay (Redeliver removes it).
	MetadataRequeues = "requeues"
	// MetadataFromTopic is the Kafka topic the message was first consumed
	// from; the poisoned copy of a message that failed on the delayed path
	// names it in "topic_poisoned", so that the poison tooling sees the same
	// origin as for a message poisoned straight from Kafka.
	MetadataFromTopic = "requeue_topic"
	// MetadataHandler is the consumer (handler name) the delayed path
	// delivers the message to.
	MetadataHandler = "requeue_handler"
)

// Table is the table of the delayed path in each service database: one row per
// message waiting to be delivered again to one consumer (consumer group and
// handler) of that database, due at delayed_until.
const Table = "consumer_requeue"

// HandlerSuffix names the router handler of a consumer's delayed path: the
// consumer's name followed by it.
const HandlerSuffix = ".requeued"

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations create the delayed path's table, tracked in goose_delayed_version.
var Migrations = sqldb.Migrations{Table: "goose_delayed_version", FS: migrations, Dir: "migrations"}

// Config configures the delayed paths (env prefix REQUEUE_, e.g.
// PAYMENT_REQUEUE_POLL_INTERVAL).
type Config struct {
	// PollInterval is how often an idle delayed path looks for due messages: it
	// adds up to this much to every delay. Default 1 s.
	PollInterval time.Duration `env:"POLL_INTERVAL"`
}

// Defaults returns c with zero fields set to their defaults.
func (c Config) Defaults() Config {
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.PollInterval <= 0 {
		return errors.New("delayed path: poll interval must be positive")
	}
	return nil
}

// schema is the delayed path's table as a watermill-sql queue schema: polled
// at READ COMMITTED (sqlqueue.ReadCommittedSchema), one row at a time,
// reading only the rows of one consumer group whose delay is over. The
// "topic" is the consumer's handler name.
type schema struct {
	sqlqueue.ReadCommittedSchema
	group string
}

func tableName(string) string { return "`" + Table + "`" }

func newSchema(group string, sessionLevel bool) schema {
	return schema{group: group, ReadCommittedSchema: sqlqueue.ReadCommittedSchema{SessionLevel: sessionLevel, MySQLQueueSchema: wsql.MySQLQueueSchema{
		SubscribeBatchSize:        1,
		GenerateMessagesTableName: tableName,
		GenerateWhereClause: func(p wsql.GenerateWhereClauseParams) (string, []any) {
			// DATETIME(6) in UTC compared with UTC_TIMESTAMP(6): no session time zone involved.
			return "consumer_group = ? AND handler = ? AND delayed_until <= UTC_TIMESTAMP(6)", []any{group, p.Topic}
		},
	}}}
}

// InsertQuery implements wsql.SchemaAdapter: it stores each message for the
// consumer group and handler (the topic), due at its Watermill delay metadata
// (delay.DelayedUntilKey), or now without one.
func (s schema) InsertQuery(p wsql.InsertQueryParams) (wsql.Query, error) {
	q := wsql.Query{Query: "INSERT INTO `" + Table + "` (uuid, payload, metadata, consumer_group, handler, delayed_until) VALUES "}
	for i, m := range p.Msgs {
		meta, err := json.Marshal(m.Metadata)
		if err != nil {
			return wsql.Query{}, fmt.Errorf("delayed path: metadata of %s: %w", m.UUID, err)
		}
		due := time.Now().UTC()
		if v := m.Metadata.Get(delay.DelayedUntilKey); v != "" {
			if due, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return wsql.Query{}, fmt.Errorf("delayed path: delay of %s: %w", m.UUID, err)
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

// NewPublisher returns a publisher that stores messages on the delayed path
// of consumer group group, through exec (the database, or a transaction):
// Publish(handler, msgs...) stores them for that consumer, due at their
// Watermill delay (delay.Message), or at once without one.
func NewPublisher(exec wsql.ContextExecutor, group string) (message.Publisher, error) {
	pub, err := wsql.NewPublisher(exec, wsql.PublisherConfig{SchemaAdapter: newSchema(group, false)}, nil)
	if err != nil {
		return nil, err
	}
	return delay.NewPublisher(pub, delay.PublisherConfig{AllowNoDelay: true})
}

// NewSubscriber returns the subscriber of consumer group group's delayed
// paths in db: Subscribe(handler) delivers that consumer's due rows, one at a
// time, each in a polling transaction that deletes the row once the message
// is acknowledged (sqlqueue.DeleteAckedOnly). Handlers can use that
// transaction (wsql.TxFromContext): what they write there commits with the
// delete, or neither does.
//
// The polling transaction holds its row until the consumer acknowledges or
// nacks the message, however long that takes: there is no ack deadline.
// watermill-sql's default deadline (30 s) would hand the row out again,
// while the first delivery still runs (the consumer stack detaches handlers
// from cancellation), as soon as the deadline passed, and the first delivery
// would then write through a transaction already committed. The time a row
// is held is bounded by the consumer stack instead: at most (MaxRetries+1)
// handler timeouts plus the retry backoff (about 3 minutes with the
// defaults), plus the breaker's and the throttle's waits; a message held at
// a stop or pause gate is held until the gate opens or the graceful shutdown
// releases it. Meanwhile other replicas' polls of the same consumer wait for
// the row's lock.
func NewSubscriber(db *sql.DB, group string, c Config, logger watermill.LoggerAdapter) (message.Subscriber, error) {
	c = c.Defaults()
	noDeadline := time.Duration(0)
	return wsql.NewSubscriber(wsql.BeginnerFromStdSQL(db), wsql.SubscriberConfig{
		SchemaAdapter:  newSchema(group, sqldb.SessionReadCommitted(db)),
		OffsetsAdapter: sqlqueue.DeleteAckedOnly{MySQLQueueOffsetsAdapter: wsql.MySQLQueueOffsetsAdapter{DeleteOnAck: true, GenerateMessagesTableName: tableName}},
		PollInterval:   c.PollInterval,
		ResendInterval: time.Second,
		RetryInterval:  time.Second,
		AckDeadline:    &noDeadline,
	}, logger)
}

// Redeliver stores msg, as part of tx, on the delayed path of the consumer
// handler of consumer group group (in the database of tx), due now, with its
// requeue count reset and fromTopic as the topic it came from. Once tx commits,
// that consumer's delayed path delivers it through the consumer's whole stack
// (inbox included): only that consumer group sees it, and a message id it has
// processed already is dropped by its inbox. The poison tooling replays with
// it. It fails if the table of Migrations is missing or tx fails.
func Redeliver(ctx context.Context, tx *sql.Tx, group, handler, fromTopic string, msg *message.Message) error {
	pub, err := NewPublisher(wsql.TxFromStdSQL(tx), group)
	if err != nil {
		return err
	}
	m := msg.Copy()
	m.SetContext(ctx)
	delete(m.Metadata, MetadataRequeues)
	m.Metadata.Set(MetadataFromTopic, fromTopic)
	m.Metadata.Set(MetadataHandler, handler)
	delay.Message(m, delay.For(0))
	return pub.Publish(handler, m)
}
