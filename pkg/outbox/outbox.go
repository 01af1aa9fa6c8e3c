package outbox

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

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
	// deleteOnWrite deletes each row in the transaction that writes it
	// (NewForLogTailing).
	deleteOnWrite bool
	// receipts records each write's events in its transaction (WithReceipts).
	receipts Receipts
}

// Receipts records, in the transaction that writes them to the outbox, that
// msgs (addressed to the Kafka topic) were written: a delivery auditor's
// receipts (audit.WriteReceipts). Its error fails the write.
type Receipts func(ctx context.Context, tx wsql.ContextExecutor, topic string, msgs []*message.Message) error

// WriteOption shapes an Outbox.
type WriteOption func(*Outbox)

// WithReceipts records every write's events with r, in its transaction.
func WithReceipts(r Receipts) WriteOption { return func(o *Outbox) { o.receipts = r } }

// New returns an Outbox whose rows a forwarder (NewForwarder) relays.
func New(opts ...WriteOption) *Outbox {
	o := &Outbox{}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// NewForLogTailing returns an Outbox for a relay that tails the database's
// binary log instead of polling the table (Debezium's connector with its
// Outbox Event Router, ADR 0068): each row is deleted again in the transaction
// that writes it, so the table stays empty and the binary log, which records
// the insert, carries the event. Nothing in this process relays; a forwarder
// on this outbox would find no rows.
func NewForLogTailing(opts ...WriteOption) *Outbox {
	o := New(opts...)
	o.deleteOnWrite = true
	return o
}

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
	if o.deleteOnWrite {
		if err := deleteInserted(ctx, tx, len(msgs)); err != nil {
			return err
		}
	}
	if o.receipts != nil {
		if err := o.receipts(ctx, tx, topic, msgs); err != nil {
			return fmt.Errorf("outbox receipts: %w", err)
		}
	}
	sqldb.OnCommit(ctx, o, o.wakers.signal)
	return nil
}

// Tables are the table this outbox's rows go to (Table) and, for a relay that
// keeps its rows (the fault build's StockRelay), the watermill-sql offsets
// table that says up to which row it let go ("" for the others).
func (o *Outbox) Tables() (rows, ackedOffsets string) {
	if o.sqlTopic == "" {
		return Table, ""
	}
	return "watermill_" + o.sqlTopic, "watermill_offsets_" + o.sqlTopic
}

// Pending counts the rows waiting in the outbox of db.
func Pending(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+Table+"`").Scan(&n)
	return n, err
}

// deleteInserted deletes the n rows the last INSERT of tx wrote. One INSERT
// of n rows takes n consecutive offsets (InnoDB gives a statement whose row
// count it knows one run of values, in every autoinc lock mode), the first of
// which is the session's LAST_INSERT_ID(). Each row is deleted by its primary
// key, so the delete locks only those rows, never a neighbour that another
// writer inserts; one statement, no round trip to read the offsets first.
func deleteInserted(ctx context.Context, tx wsql.ContextExecutor, n int) error {
	in := make([]string, n)
	for i := range in {
		in[i] = fmt.Sprintf("LAST_INSERT_ID()+%d", i)
	}
	res, err := tx.ExecContext(ctx, "DELETE FROM `"+Table+"` WHERE `offset` IN ("+strings.Join(in, ",")+")")
	if err != nil {
		return fmt.Errorf("deleting the outbox rows the binary log carries: %w", err)
	}
	if deleted, err := res.RowsAffected(); err != nil || deleted != int64(n) {
		return errors.Join(fmt.Errorf("deleting the outbox rows the binary log carries: deleted %d of %d", deleted, n), err)
	}
	return nil
}

// CheckBinaryLog fails unless db writes a binary log a log-tailing relay can
// read every row from: on, ROW format, full row images. An outbox of
// NewForLogTailing deletes its rows as it writes them; without such a log
// their events would be lost.
func CheckBinaryLog(ctx context.Context, db *sql.DB) error {
	var on int
	var format, image string
	err := db.QueryRowContext(ctx, "SELECT @@log_bin, @@binlog_format, @@binlog_row_image").Scan(&on, &format, &image)
	if err != nil {
		return fmt.Errorf("reading the database's binary log settings: %w", err)
	}
	if on != 1 || format != "ROW" || image != "FULL" {
		return fmt.Errorf("the outbox relay %q reads the binary log, but the database has log_bin=%d, binlog_format=%s, binlog_row_image=%s (want 1, ROW, FULL)",
			RelayDebezium, on, format, image)
	}
	return nil
}
