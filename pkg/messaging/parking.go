package messaging

import (
	"context"
	stdsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/sqldb"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
)

// ParkedBehind is the reason of a row parked although nothing is wrong with
// it: an earlier row of the same Kafka key is parked, and this one waits behind
// it so that the key's events keep their order. The other reasons are Kafka's
// refusals (kafka.Refused*).
const ParkedBehind = "behind_parked"

// ForwarderStats counts what a forwarder parked since the process started.
type ForwarderStats struct {
	// Parked is how many rows were parked (including rows parked behind another).
	Parked atomic.Int64
}

// parker is the forwarder's Kafka publisher with parking (ADR 22). It runs
// inside the outbox subscriber's polling transaction (wsql.TxFromContext), so a
// row it parks is inserted into outbox_parked and deleted from the outbox (by
// the ack that follows its nil return) in one commit.
//
// Cost when nothing is parked: one `SELECT EXISTS(SELECT 1 FROM outbox_parked)`
// per polling transaction (a batch of up to OutboxConfig.BatchSize rows), an
// index probe on an empty table; rows are then published without any per-row
// query. Only while something is parked does each row cost one indexed, locking
// read of its key's queue.
type parker struct {
	out          message.Publisher
	topicCreated func(topic string) bool
	outbox       *Outbox
	logger       watermill.LoggerAdapter
	stats        *ForwarderStats

	mu     sync.Mutex
	lastTx wsql.Tx // polling transaction of the cached answer
	any    bool    // whether outbox_parked had rows (or this tx parked one)
}

// Publish implements message.Publisher.
func (p *parker) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		if err := p.forward(topic, m); err != nil {
			return err
		}
	}
	return nil
}

// Close implements message.Publisher.
func (p *parker) Close() error { return p.out.Close() }

type parkedHead struct {
	id        int64
	messageID string
	released  bool
}

func (p *parker) forward(topic string, m *message.Message) error {
	ctx := m.Context()
	tx, ok := wsql.TxFromContext(ctx)
	if !ok {
		return p.out.Publish(topic, m)
	}
	key := m.Metadata.Get(kafka.MetadataKey)
	anyParked, err := p.mayHaveParked(ctx, tx)
	if err != nil {
		return err
	}
	if anyParked {
		head, err := queueHead(ctx, tx, key)
		if err != nil {
			return err
		}
		if head != nil && (head.messageID != m.UUID || !head.released) {
			return p.park(ctx, tx, topic, m, ParkedBehind, "an earlier event of key "+key+" is parked: "+head.messageID)
		}
		if head != nil { // the head of its key, replayed: forward it and release the next
			pubErr := p.out.Publish(topic, m)
			if pubErr == nil {
				return p.forwardedHead(ctx, tx, key, head)
			}
			reason := kafka.UnfixableReason(pubErr, topic, p.topicCreated)
			if reason == "" {
				return pubErr
			}
			if _, err := tx.ExecContext(ctx, "UPDATE outbox_parked SET released_at = NULL, reason = ?, kafka_error = ?, times_parked = times_parked + 1 WHERE id = ?",
				reason, pubErr.Error(), head.id); err != nil {
				return err
			}
			p.logPark(m, key, reason, pubErr.Error())
			return nil
		}
	}
	pubErr := p.out.Publish(topic, m)
	if pubErr == nil {
		return nil
	}
	reason := kafka.UnfixableReason(pubErr, topic, p.topicCreated)
	if reason == "" {
		return pubErr
	}
	return p.park(ctx, tx, topic, m, reason, pubErr.Error())
}

// mayHaveParked answers, once per polling transaction, whether outbox_parked has
// rows.
func (p *parker) mayHaveParked(ctx context.Context, tx wsql.Tx) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if tx == p.lastTx {
		return p.any, nil
	}
	rows, err := tx.QueryContext(ctx, "SELECT EXISTS(SELECT 1 FROM outbox_parked)")
	if err != nil {
		return false, fmt.Errorf("checking parked outbox rows: %w", err)
	}
	defer rows.Close()
	var any bool
	if rows.Next() {
		if err := rows.Scan(&any); err != nil {
			return false, err
		}
	}
	p.lastTx, p.any = tx, any
	return any, nil
}

// queueHead locks the parked rows of key (so that a concurrent replay or discard
// of that key waits for this polling transaction, and vice versa) and returns the
// first, or nil.
func queueHead(ctx context.Context, tx wsql.ContextExecutor, key string) (*parkedHead, error) {
	rows, err := tx.QueryContext(ctx, "SELECT id, message_id, released_at IS NOT NULL FROM outbox_parked WHERE partition_key = ? ORDER BY id FOR UPDATE", key)
	if err != nil {
		return nil, fmt.Errorf("reading parked rows of key %s: %w", key, err)
	}
	defer rows.Close()
	var head *parkedHead
	for rows.Next() {
		if head != nil {
			continue // drain: every row of the key stays locked
		}
		head = &parkedHead{}
		if err := rows.Scan(&head.id, &head.messageID, &head.released); err != nil {
			return nil, err
		}
	}
	return head, nil
}

func (p *parker) park(ctx context.Context, tx wsql.Tx, topic string, m *message.Message, reason, kafkaErr string) error {
	meta, err := json.Marshal(m.Metadata)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO outbox_parked (message_id, partition_key, topic, payload, metadata, reason, kafka_error) VALUES (?, ?, ?, ?, ?, ?, ?)",
		m.UUID, m.Metadata.Get(kafka.MetadataKey), topic, []byte(m.Payload), string(meta), reason, kafkaErr); err != nil {
		return fmt.Errorf("parking outbox row %s: %w", m.UUID, err)
	}
	p.mu.Lock()
	if p.lastTx == tx {
		p.any = true
	}
	p.mu.Unlock()
	p.logPark(m, m.Metadata.Get(kafka.MetadataKey), reason, kafkaErr)
	return nil
}

func (p *parker) logPark(m *message.Message, key, reason, kafkaErr string) {
	n := p.stats.Parked.Add(1)
	p.logger.Error("outbox row parked: the forwarder will not retry it; see `poison parked list`", errors.New(kafkaErr), watermill.LogFields{
		"message_id": m.UUID, "partition_key": key, "reason": reason, "parked_total": n,
	})
}

// forwardedHead resolves a replayed head that Kafka took: deletes it and
// releases the next parked row of its key, if any, into the outbox.
func (p *parker) forwardedHead(ctx context.Context, tx wsql.Tx, key string, head *parkedHead) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM outbox_parked WHERE id = ?", head.id); err != nil {
		return err
	}
	p.logger.Info("parked outbox row forwarded after replay", watermill.LogFields{"message_id": head.messageID, "partition_key": key})
	next, err := queueHead(ctx, tx, key)
	if err != nil || next == nil {
		return err
	}
	return p.outbox.release(ctx, tx, next.id)
}

// ParkedRow is an outbox row the forwarder parked (ADR 22).
type ParkedRow struct {
	// ID orders parked rows; within one key it is the order the events must keep.
	ID        int64  `json:"id"`
	MessageID string `json:"message_id"`
	// Key is the Kafka key (order id).
	Key       string `json:"key"`
	Topic     string `json:"topic"`
	EventType string `json:"event_type,omitempty"`
	// Reason is one of the Parked* constants.
	Reason string `json:"reason"`
	// KafkaError is the publisher's error (for ParkedBehind: which row it waits for).
	KafkaError  string `json:"kafka_error"`
	ParkedAt    string `json:"parked_at"`
	TimesParked int    `json:"times_parked"`
	Replays     int    `json:"replays"`
	// Head is true for the first parked row of its key: the one to replay or discard.
	Head bool `json:"head"`
	// Released is true while a replayed row waits in the outbox to be forwarded.
	Released bool `json:"released"`
	// Size is the payload plus metadata size in bytes.
	Size     int               `json:"size"`
	Payload  string            `json:"payload,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Errors of the parked-row operations.
var (
	// ErrParkedNotFound: no parked row with that id.
	ErrParkedNotFound = errors.New("no parked outbox row with that id")
	// ErrNotHead: the row waits behind an earlier parked row of its key; replay or
	// discard that one first.
	ErrNotHead = errors.New("the row is not the first parked row of its key")
	// ErrAlreadyReleased: the row was replayed and waits in the outbox.
	ErrAlreadyReleased = errors.New("the row was replayed and waits in the outbox")
)

// ListParked returns the parked rows of db in park order, without payloads.
func (o *Outbox) ListParked(ctx context.Context, db *stdsql.DB) ([]ParkedRow, error) {
	return o.queryParked(ctx, db, false, "")
}

// GetParked returns one parked row with its payload and metadata, or ErrParkedNotFound.
func (o *Outbox) GetParked(ctx context.Context, db *stdsql.DB, id int64) (ParkedRow, error) {
	rows, err := o.queryParked(ctx, db, true, "WHERE p.id = ?", id)
	if err != nil {
		return ParkedRow{}, err
	}
	if len(rows) == 0 {
		return ParkedRow{}, ErrParkedNotFound
	}
	return rows[0], nil
}

func (o *Outbox) queryParked(ctx context.Context, db *stdsql.DB, full bool, where string, args ...any) ([]ParkedRow, error) {
	rows, err := db.QueryContext(ctx, `SELECT p.id, p.message_id, p.partition_key, p.topic, p.reason, p.kafka_error,
		DATE_FORMAT(p.parked_at, '%Y-%m-%dT%H:%i:%s.%fZ'), p.times_parked, p.replays, p.released_at IS NOT NULL,
		p.id = (SELECT MIN(h.id) FROM outbox_parked h WHERE h.partition_key = p.partition_key),
		LENGTH(p.payload) + LENGTH(p.metadata), p.payload, p.metadata
		FROM outbox_parked p `+where+` ORDER BY p.id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ParkedRow
	for rows.Next() {
		var r ParkedRow
		var payload []byte
		var meta string
		if err := rows.Scan(&r.ID, &r.MessageID, &r.Key, &r.Topic, &r.Reason, &r.KafkaError, &r.ParkedAt,
			&r.TimesParked, &r.Replays, &r.Released, &r.Head, &r.Size, &payload, &meta); err != nil {
			return nil, err
		}
		var md map[string]string
		if err := json.Unmarshal([]byte(meta), &md); err == nil {
			r.EventType = md[kafka.MetadataEventType]
		}
		if full {
			r.Payload, r.Metadata = string(payload), md
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ReplayParked sends the parked row id, which must be the head of its key, back
// into the outbox (at its end) and marks it released. When the forwarder has
// published it, it deletes it and releases the key's next parked row, and so
// on: the key's rows follow in order. If Kafka refuses it again for an
// unfixable reason it is parked again, in place. Errors: ErrParkedNotFound,
// ErrNotHead, ErrAlreadyReleased.
func (o *Outbox) ReplayParked(ctx context.Context, db *stdsql.DB, id int64) (ParkedRow, error) {
	return o.onHead(ctx, db, id, func(ctx context.Context, tx *stdsql.Tx, _ ParkedRow) error {
		if _, err := tx.ExecContext(ctx, "UPDATE outbox_parked SET replays = replays + 1 WHERE id = ?", id); err != nil {
			return err
		}
		return o.release(ctx, wsql.TxFromStdSQL(tx), id)
	})
}

// onHead runs fn, in one transaction, on the parked row id after locking it as
// the head of its key (lockHead's errors), and returns the row.
func (o *Outbox) onHead(ctx context.Context, db *stdsql.DB, id int64, fn func(ctx context.Context, tx *stdsql.Tx, r ParkedRow) error) (ParkedRow, error) {
	var row ParkedRow
	err := sqldb.InTx(ctx, db, func(ctx context.Context, tx *stdsql.Tx) error {
		r, err := o.lockHead(ctx, tx, id)
		if err != nil {
			return err
		}
		row = r
		return fn(ctx, tx, r)
	})
	return row, err
}

// ReplayAllParked replays the head of every key that has parked rows and is not
// already replayed, and returns them.
func (o *Outbox) ReplayAllParked(ctx context.Context, db *stdsql.DB) ([]ParkedRow, error) {
	list, err := o.ListParked(ctx, db)
	if err != nil {
		return nil, err
	}
	var done []ParkedRow
	for _, r := range list {
		if !r.Head || r.Released {
			continue
		}
		if _, err := o.ReplayParked(ctx, db, r.ID); err != nil {
			return done, err
		}
		done = append(done, r)
	}
	return done, nil
}

// DiscardParked deletes the parked row id, which must be the head of its key and
// not replayed: its event is given up for good (the operator's decision). The
// key's next parked row, if any, is released into the outbox, and the rest
// follow it in order. Errors: ErrParkedNotFound, ErrNotHead, ErrAlreadyReleased.
func (o *Outbox) DiscardParked(ctx context.Context, db *stdsql.DB, id int64) (ParkedRow, error) {
	return o.onHead(ctx, db, id, func(ctx context.Context, tx *stdsql.Tx, r ParkedRow) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM outbox_parked WHERE id = ?", id); err != nil {
			return err
		}
		wtx := wsql.TxFromStdSQL(tx)
		next, err := queueHead(ctx, wtx, r.Key)
		if err != nil || next == nil {
			return err
		}
		return o.release(ctx, wtx, next.id)
	})
}

// lockHead locks the parked rows of id's key and checks that id is its
// unreleased head.
func (o *Outbox) lockHead(ctx context.Context, tx *stdsql.Tx, id int64) (ParkedRow, error) {
	var r ParkedRow
	err := tx.QueryRowContext(ctx, "SELECT id, message_id, partition_key, topic, reason FROM outbox_parked WHERE id = ?", id).
		Scan(&r.ID, &r.MessageID, &r.Key, &r.Topic, &r.Reason)
	if errors.Is(err, stdsql.ErrNoRows) {
		return r, ErrParkedNotFound
	}
	if err != nil {
		return r, err
	}
	head, err := queueHead(ctx, wsql.TxFromStdSQL(tx), r.Key)
	switch {
	case err != nil:
		return r, err
	case head == nil:
		return r, ErrParkedNotFound // resolved meanwhile
	case head.id != id:
		return r, fmt.Errorf("%w: replay or discard row %d (%s) first", ErrNotHead, head.id, head.messageID)
	case head.released:
		return r, ErrAlreadyReleased
	}
	r.Head = true
	return r, nil
}

// release writes parked row id back into the outbox inside tx and marks it
// released; the caller holds the lock on its key's parked rows.
func (o *Outbox) release(ctx context.Context, tx wsql.Tx, id int64) error {
	rows, err := tx.QueryContext(ctx, "SELECT message_id, topic, payload, metadata FROM outbox_parked WHERE id = ?", id)
	if err != nil {
		return err
	}
	var msgID, topic, meta string
	var payload []byte
	found := rows.Next()
	if found {
		err = rows.Scan(&msgID, &topic, &payload, &meta)
	}
	rows.Close()
	if err != nil {
		return err
	}
	if !found {
		return ErrParkedNotFound
	}
	m := message.NewMessage(msgID, payload)
	if err := json.Unmarshal([]byte(meta), &m.Metadata); err != nil {
		return fmt.Errorf("parked row %d: metadata: %w", id, err)
	}
	m.SetContext(ctx)
	sqlPub, err := wsql.NewPublisher(tx, wsql.PublisherConfig{SchemaAdapter: o.schema}, nil)
	if err != nil {
		return err
	}
	if err := forwarder.NewPublisher(sqlPub, forwarder.PublisherConfig{ForwarderTopic: OutboxTopic}).Publish(topic, m); err != nil {
		return fmt.Errorf("re-inserting parked row %d into the outbox: %w", id, err)
	}
	o.wakeOnCommit(ctx) // a replay or discard (InTx); in the polling transaction, nothing to wake

	_, err = tx.ExecContext(ctx, "UPDATE outbox_parked SET released_at = CURRENT_TIMESTAMP(6) WHERE id = ?", id)
	return err
}
