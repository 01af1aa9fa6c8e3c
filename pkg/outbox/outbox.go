package outbox

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/causation"
	"github.com/onceflow/onceflow/pkg/msgtrace"
	"github.com/onceflow/onceflow/pkg/sqldb"
	"github.com/onceflow/onceflow/pkg/sqlqueue"
)

// Topic is the SQL "topic" of the outbox: its rows live in the table
// `watermill_outbox` of the service's own database (Migrations).
const Topic = "outbox"

// Table is the outbox table.
const Table = "watermill_outbox"

// queueSchema is the outbox table as a watermill-sql queue: the writers' view
// (Publish, Insert) and, with a batch size and the pool's session level, the
// forwarder's.
func queueSchema(batchSize int, sessionLevel bool) sqlqueue.ReadCommittedSchema {
	return sqlqueue.ReadCommittedSchema{MySQLQueueSchema: wsql.MySQLQueueSchema{SubscribeBatchSize: batchSize}, SessionLevel: sessionLevel}
}

// Outbox writes events into a service's outbox table inside the caller's
// transaction. Its forwarders (NewForwarder with Config.Outbox) wake when such
// a transaction commits. Make it with New; it is safe for concurrent use.
type Outbox struct {
	// wakers wake this outbox's forwarders after a commit that wrote rows.
	wakers wakers
	// sqlTopic and schema are the table the rows go to; zero: the queue
	// schema's table of Topic. Only the fault build changes them (StockRelay,
	// LateOffsetEvery).
	sqlTopic string
	schema   wsql.SchemaAdapter
}

// New returns an Outbox.
func New() *Outbox { return &Outbox{} }

// Publish stores msgs, addressed to the Kafka topic, in the outbox as part of tx.
// They become visible to the forwarder only when tx commits, and vanish if it
// rolls back: the state change and its events are one atomic write. The messages'
// UUIDs and metadata survive the forwarder unchanged. Written while a consumer
// handles a message, they also get that message's id and attempt count
// (causation.Stamp), and the trace context of ctx, if it holds a span
// (msgtrace.Inject). An event over the size bounds (MaxMetadataValueBytes,
// MaxMessageBytes) is refused with a permanent error wrapping
// ErrMessageTooLarge, and nothing is written. When tx is sqldb.InTx's (ctx
// carries it), its commit wakes this outbox's forwarders; otherwise they find
// the rows at their next fallback poll.
func (o *Outbox) Publish(ctx context.Context, tx *sql.Tx, topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		m.SetContext(ctx)
	}
	causation.Stamp(ctx, msgs)
	msgtrace.Inject(ctx, msgs)
	for _, m := range msgs {
		if err := checkSize(m); err != nil {
			return err
		}
	}
	if err := o.insert(ctx, wsql.TxFromStdSQL(tx), topic, msgs...); err != nil {
		return fmt.Errorf("writing %d event(s) to the outbox: %w", len(msgs), err)
	}
	return nil
}

// Insert writes msg, addressed to the Kafka topic, into the outbox as part of
// tx as it is: no size check, no causation or trace stamp. Parking re-inserts
// a row it releases with it, in the forwarder's polling transaction or in an
// operator's sqldb.InTx transaction, whose commit wakes this outbox's
// forwarders.
func (o *Outbox) Insert(ctx context.Context, tx wsql.ContextExecutor, topic string, msg *message.Message) error {
	msg.SetContext(ctx)
	return o.insert(ctx, tx, topic, msg)
}

func (o *Outbox) insert(ctx context.Context, tx wsql.ContextExecutor, topic string, msgs ...*message.Message) error {
	var schema wsql.SchemaAdapter = queueSchema(1, false)
	if o.schema != nil {
		schema = o.schema
	}
	sqlPub, err := wsql.NewPublisher(tx, wsql.PublisherConfig{SchemaAdapter: schema}, nil)
	if err != nil {
		return fmt.Errorf("outbox publisher: %w", err)
	}
	if err := forwarder.NewPublisher(sqlPub, forwarder.PublisherConfig{ForwarderTopic: cmp.Or(o.sqlTopic, Topic)}).Publish(topic, msgs...); err != nil {
		return err
	}
	sqldb.OnCommit(ctx, o, o.wakers.signal)
	return nil
}

// Pending counts the rows waiting in the outbox of db.
func Pending(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+Table+"`").Scan(&n)
	return n, err
}
