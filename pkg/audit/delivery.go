package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
)

// WriteReceipts is an outbox.Receipts: one row of audit_receipts per event,
// in the transaction that writes the events (INSERT IGNORE: a parked row put
// back into the outbox keeps its first receipt).
func WriteReceipts(ctx context.Context, tx wsql.ContextExecutor, topic string, msgs []*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	marks := make([]string, len(msgs))
	args := make([]any, 0, 4*len(msgs))
	for i, m := range msgs {
		marks[i] = "(?, ?, ?, ?)"
		args = append(args, m.UUID, m.Metadata.Get(kafka.MetadataKey), topic, m.Metadata.Get(kafka.MetadataEventType))
	}
	_, err := tx.ExecContext(ctx, "INSERT IGNORE INTO audit_receipts (event_id, event_key, topic, event_type) VALUES "+strings.Join(marks, ", "), args...)
	return err
}

var _ outbox.Receipts = WriteReceipts

// Receipt is an event the outbox wrote.
type Receipt struct {
	ID                 int64
	EventID, Key, Type string
	WrittenAt          time.Time
}

// Offsets is what the delivery check asks Kafka (a *kafka.LagReader).
type Offsets interface {
	// HighWatermarks returns the next offset of each partition of topic.
	HighWatermarks(topic string) (map[int32]int64, error)
	// Committed returns group's committed offset on each partition of topic
	// (-1: none).
	Committed(group, topic string) (map[int32]int64, error)
}

// DeliveryConfig configures the delivery check.
type DeliveryConfig struct {
	DB *sql.DB
	// Topic is the topic the service's outbox writes to; OutboxTable the
	// table its rows wait in (outbox.Outbox.Tables), whose relay deletes
	// each row once Kafka acknowledged it.
	Topic, OutboxTable string
	// AckedOffsets is set for a relay that keeps its rows instead: the
	// offsets table of watermill-sql's DefaultMySQLOffsetsAdapter, whose
	// rows carry the forwarder's envelope (outbox.Outbox.Tables).
	// A row at or below the acknowledged offset was let go of.
	AckedOffsets string
	// Reader is a consumer group that reads Topic and records what it reads
	// (the order service's timeline); Seen returns which of rs it recorded.
	Reader string
	Seen   func(ctx context.Context, rs []Receipt) (map[string]bool, error)
	Kafka  Offsets
	// Settle: receipts younger than this are left to a later pass.
	Settle time.Duration
	// Batch bounds the receipts one pass reads. Default 1000.
	Batch int
	// EventTypes are the types of the events the outbox writes: the check's
	// scopes are "topic/type", exported at zero from the start.
	EventTypes []string
}

// DeliveryCheck returns the check "event_lost" (scope: "topic/event type"): an event
// the outbox wrote (its receipt), whose row the relay let go of (the oldest
// row still waiting is younger than the receipt, and it is not parked), and
// that the reader has not recorded although it has committed past every
// offset Kafka had when that was seen. Evidence, not a timeout: an event
// still waiting in the outbox, parked, or not yet read is never judged.
// Judged receipts are deleted. Settle must exceed the longest transaction
// that writes events: a receipt committed later than that after its write
// may be passed over.
//
// It needs a relay that deletes a row only after Kafka acknowledged it
// (the batch and single relays), or one that keeps its rows behind an
// acknowledged offset (the stock relay, AckedOffsets): there a row committed
// below that offset is let go of unsent, and judged. With a relay that
// deletes rows as they are written (Debezium) it must not be used.
func DeliveryCheck(c DeliveryConfig) (Check, error) {
	if c.DB == nil || c.Topic == "" || c.OutboxTable == "" || c.Reader == "" || c.Seen == nil || c.Kafka == nil || c.Settle <= 0 {
		return Check{}, errors.New("audit: the delivery check needs DB, Topic, OutboxTable, Reader, Seen, Kafka and Settle")
	}
	if c.Batch == 0 {
		c.Batch = 1000
	}
	d := &delivery{config: c}
	scopes := make([]string, len(c.EventTypes))
	for i, t := range c.EventTypes {
		scopes[i] = c.Topic + "/" + t
	}
	return Check{Name: "event_lost", Scopes: scopes, Run: d.run}, nil
}

// delivery is the delivery check's state between passes: the receipts it
// waits to judge until the reader has passed the offsets of the moment their
// rows were seen gone.
type delivery struct {
	config DeliveryConfig

	mu      sync.Mutex
	pending *pendingReceipts
}

type pendingReceipts struct {
	unseen []Receipt
	// upTo is the last receipt id of the batch; hw Kafka's high watermarks
	// once their rows were gone.
	upTo int64
	hw   map[int32]int64
}

func (d *delivery) run(ctx context.Context, after int64) ([]Violation, int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.config
	if p := d.pending; p != nil {
		committed, err := c.Kafka.Committed(c.Reader, c.Topic)
		if err != nil {
			return nil, after, err
		}
		for partition, hw := range p.hw {
			if committed[partition] < hw {
				return nil, after, ErrPending // the reader has not read that far yet
			}
		}
		seen, err := c.Seen(ctx, p.unseen)
		if err != nil {
			return nil, after, err
		}
		var found []Violation
		for _, r := range p.unseen {
			if !seen[r.EventID] {
				found = append(found, Violation{Scope: c.Topic + "/" + r.Type, Subject: r.EventID,
					Detail: fmt.Sprintf("key %s, written %s: its outbox row is gone and Kafka has no such event", r.Key, r.WrittenAt.UTC().Format(time.RFC3339Nano))})
			}
		}
		d.pending = nil
		return found, p.upTo, d.prune(ctx, p.upTo)
	}

	gone, upTo, err := d.gone(ctx, after)
	if err != nil || upTo == after {
		return nil, after, err
	}
	var unseen []Receipt
	if len(gone) > 0 {
		seen, err := c.Seen(ctx, gone)
		if err != nil {
			return nil, after, err
		}
		for _, r := range gone {
			if !seen[r.EventID] {
				unseen = append(unseen, r)
			}
		}
	}
	if len(unseen) == 0 {
		return nil, upTo, d.prune(ctx, upTo)
	}
	hw, err := c.Kafka.HighWatermarks(c.Topic)
	if err != nil {
		return nil, after, err
	}
	d.pending = &pendingReceipts{unseen: unseen, upTo: upTo, hw: hw}
	return nil, after, ErrPending
}

// gone returns, in id order, the receipts after the cursor whose rows the
// relay let go of, without the parked ones, and the last id they span
// (after: none): the longest run of receipts older than Settle and written
// before the oldest row still in the outbox.
func (d *delivery) gone(ctx context.Context, after int64) ([]Receipt, int64, error) {
	c := d.config
	rows, err := c.DB.QueryContext(ctx, "SELECT id, event_id, event_key, event_type, written_at FROM audit_receipts WHERE id > ? AND topic = ? ORDER BY id LIMIT ?",
		after, c.Topic, c.Batch)
	if err != nil {
		return nil, after, fmt.Errorf("receipts: %w", err)
	}
	defer rows.Close()
	var rs []Receipt
	for rows.Next() {
		var r Receipt
		if err := rows.Scan(&r.ID, &r.EventID, &r.Key, &r.Type, &r.WrittenAt); err != nil {
			return nil, after, fmt.Errorf("receipts: %w", err)
		}
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil || len(rs) == 0 {
		return nil, after, err
	}
	before := time.Now().UTC().Add(-c.Settle)
	var waiting map[string]bool
	if c.AckedOffsets == "" {
		// A row is written just before its receipt, in the same transaction:
		// while it waits, the oldest waiting row is no younger than the
		// receipt. The outbox's created_at has whole seconds: one second of
		// margin.
		var oldest sql.NullTime
		if err := c.DB.QueryRowContext(ctx, "SELECT MIN(created_at) FROM (SELECT created_at FROM `"+c.OutboxTable+"` ORDER BY `offset` LIMIT 1) o").Scan(&oldest); err != nil {
			return nil, after, fmt.Errorf("oldest outbox row: %w", err)
		}
		if oldest.Valid && oldest.Time.Add(-time.Second).Before(before) {
			before = oldest.Time.Add(-time.Second)
		}
	} else if waiting, err = d.unacknowledged(ctx); err != nil {
		return nil, after, err
	}
	n := 0
	for n < len(rs) && rs[n].WrittenAt.Before(before) && !waiting[rs[n].EventID] {
		n++
	}
	rs = rs[:n]
	if len(rs) == 0 {
		return nil, after, nil
	}
	upTo := rs[len(rs)-1].ID
	parked, err := d.parked(ctx, rs)
	if err != nil {
		return nil, after, err
	}
	out := rs[:0]
	for _, r := range rs {
		if !parked[r.EventID] {
			out = append(out, r)
		}
	}
	return out, upTo, nil
}

// maxUnacknowledged bounds the rows above the acknowledged offset one pass
// reads; past it, the pass waits (ErrPending).
const maxUnacknowledged = 10_000

// unacknowledged returns the events of the kept rows above the relay's
// acknowledged offset.
func (d *delivery) unacknowledged(ctx context.Context) (map[string]bool, error) {
	//nolint:gosec // G202: the table names are the service's configuration, not input
	query := "SELECT JSON_VALUE(payload, '$.uuid') FROM `" + d.config.OutboxTable + "` WHERE `offset` > " +
		"(SELECT COALESCE(MAX(offset_acked), 0) FROM `" + d.config.AckedOffsets + "`) ORDER BY `offset` LIMIT ?"
	rows, err := d.config.DB.QueryContext(ctx, query, maxUnacknowledged+1)
	if err != nil {
		return nil, fmt.Errorf("unacknowledged rows: %w", err)
	}
	defer rows.Close()
	waiting := map[string]bool{}
	for rows.Next() {
		var id sql.NullString
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("unacknowledged rows: %w", err)
		}
		waiting[id.String] = true
	}
	if len(waiting) > maxUnacknowledged {
		return nil, ErrPending
	}
	return waiting, rows.Err()
}

// parked returns which of rs's events are parked (outbox_parked, by its key
// index).
func (d *delivery) parked(ctx context.Context, rs []Receipt) (map[string]bool, error) {
	marks := make([]string, len(rs))
	args := make([]any, len(rs))
	for i, r := range rs {
		marks[i], args[i] = "?", r.Key
	}
	//nolint:gosec // G202: only "?" placeholders are joined into the query
	rows, err := d.config.DB.QueryContext(ctx, "SELECT message_id FROM outbox_parked WHERE partition_key IN ("+strings.Join(marks, ",")+")", args...)
	if err != nil {
		return nil, fmt.Errorf("parked rows: %w", err)
	}
	defer rows.Close()
	parked := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("parked rows: %w", err)
		}
		parked[id] = true
	}
	return parked, rows.Err()
}

// prune deletes the judged receipts.
func (d *delivery) prune(ctx context.Context, upTo int64) error {
	_, err := d.config.DB.ExecContext(ctx, "DELETE FROM audit_receipts WHERE id <= ? AND topic = ?", upTo, d.config.Topic)
	return err
}
