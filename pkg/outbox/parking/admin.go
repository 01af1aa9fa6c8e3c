package parking

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// Row is an outbox row the forwarder parked.
type Row struct {
	// ID orders parked rows; within one key it is the order the events must keep.
	ID        int64  `json:"id"`
	MessageID string `json:"message_id"`
	// Key is the Kafka key (order id).
	Key       string `json:"key"`
	Topic     string `json:"topic"`
	EventType string `json:"event_type,omitempty"`
	// Cause is why the row is parked: Kafka's refusal (kafka.Refused*), or
	// Behind.
	Cause string `json:"reason"`
	// KafkaError is the publisher's error (for Behind: which row it waits for).
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
	// ErrNotFound: no parked row with that id.
	ErrNotFound = errors.New("no parked outbox row with that id")
	// ErrNotHead: the row waits behind an earlier parked row of its key; replay or
	// discard that one first.
	ErrNotHead = errors.New("the row is not the first parked row of its key")
	// ErrAlreadyReleased: the row was replayed and waits in the outbox.
	ErrAlreadyReleased = errors.New("the row was replayed and waits in the outbox")
)

// List returns the parked rows in park order, without payloads.
func (p *Parking) List(ctx context.Context) ([]Row, error) {
	return p.query(ctx, false, "")
}

// OfKey returns the parked rows of one Kafka key in park order, head first,
// without payloads (by the key's index).
func (p *Parking) OfKey(ctx context.Context, key string) ([]Row, error) {
	return p.query(ctx, false, "WHERE p.partition_key = ?", key)
}

// Get returns one parked row with its payload and metadata, or ErrNotFound.
func (p *Parking) Get(ctx context.Context, id int64) (Row, error) {
	rows, err := p.query(ctx, true, "WHERE p.id = ?", id)
	if err != nil {
		return Row{}, err
	}
	if len(rows) == 0 {
		return Row{}, ErrNotFound
	}
	return rows[0], nil
}

func (p *Parking) query(ctx context.Context, full bool, where string, args ...any) ([]Row, error) {
	//nolint:gosec // G202: where is one of this file's constant clauses, with ? placeholders
	rows, err := p.config.DB.QueryContext(ctx, `SELECT p.id, p.message_id, p.partition_key, p.topic, p.reason, p.kafka_error,
		DATE_FORMAT(p.parked_at, '%Y-%m-%dT%H:%i:%s.%fZ'), p.times_parked, p.replays, p.released_at IS NOT NULL,
		p.id = (SELECT MIN(h.id) FROM outbox_parked h WHERE h.partition_key = p.partition_key),
		LENGTH(p.payload) + LENGTH(p.metadata), p.payload, p.metadata
		FROM outbox_parked p `+where+` ORDER BY p.id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		var payload []byte
		var meta string
		if err := rows.Scan(&r.ID, &r.MessageID, &r.Key, &r.Topic, &r.Cause, &r.KafkaError, &r.ParkedAt,
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

// Replay sends the parked row id, which must be the head of its key, back
// into the outbox (at its end) and marks it released. When the forwarder has
// published it, it deletes it and releases the key's next parked row, and so
// on: the key's rows follow in order. If Kafka refuses it again for an
// unfixable reason it is parked again, in place. Errors: ErrNotFound,
// ErrNotHead, ErrAlreadyReleased.
func (p *Parking) Replay(ctx context.Context, id int64) (Row, error) {
	return p.onHead(ctx, id, func(ctx context.Context, tx *sql.Tx, _ Row) error {
		if _, err := tx.ExecContext(ctx, "UPDATE outbox_parked SET replays = replays + 1 WHERE id = ?", id); err != nil {
			return err
		}
		return p.release(ctx, wsql.TxFromStdSQL(tx), id)
	})
}

// onHead runs fn, in one transaction, on the parked row id after locking it as
// the head of its key (lockHead's errors), and returns the row.
func (p *Parking) onHead(ctx context.Context, id int64, fn func(ctx context.Context, tx *sql.Tx, r Row) error) (Row, error) {
	var row Row
	err := sqldb.InTx(ctx, p.config.DB, func(ctx context.Context, tx *sql.Tx) error {
		r, err := lockHead(ctx, tx, id)
		if err != nil {
			return err
		}
		row = r
		return fn(ctx, tx, r)
	})
	return row, err
}

// ReplayAll replays the head of every key that has parked rows and is not
// already replayed, and returns them.
func (p *Parking) ReplayAll(ctx context.Context) ([]Row, error) {
	list, err := p.List(ctx)
	if err != nil {
		return nil, err
	}
	var done []Row
	for _, r := range list {
		if !r.Head || r.Released {
			continue
		}
		if _, err := p.Replay(ctx, r.ID); err != nil {
			return done, err
		}
		done = append(done, r)
	}
	return done, nil
}

// Discard deletes the parked row id, which must be the head of its key and
// not replayed: its event is given up for good (the operator's decision). The
// key's next parked row, if any, is released into the outbox, and the rest
// follow it in order. Errors: ErrNotFound, ErrNotHead, ErrAlreadyReleased.
func (p *Parking) Discard(ctx context.Context, id int64) (Row, error) {
	return p.onHead(ctx, id, func(ctx context.Context, tx *sql.Tx, r Row) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM outbox_parked WHERE id = ?", id); err != nil {
			return err
		}
		wtx := wsql.TxFromStdSQL(tx)
		next, err := queueHead(ctx, wtx, r.Key)
		if err != nil || next == nil {
			return err
		}
		return p.release(ctx, wtx, next.id)
	})
}

// lockHead locks the parked rows of id's key and checks that id is its
// unreleased head.
func lockHead(ctx context.Context, tx *sql.Tx, id int64) (Row, error) {
	var r Row
	err := tx.QueryRowContext(ctx, "SELECT id, message_id, partition_key, topic, reason FROM outbox_parked WHERE id = ?", id).
		Scan(&r.ID, &r.MessageID, &r.Key, &r.Topic, &r.Cause)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, err
	}
	head, err := queueHead(ctx, wsql.TxFromStdSQL(tx), r.Key)
	switch {
	case err != nil:
		return r, err
	case head == nil:
		return r, ErrNotFound // resolved meanwhile
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
func (p *Parking) release(ctx context.Context, tx wsql.Tx, id int64) error {
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
		return ErrNotFound
	}
	m := message.NewMessage(msgID, payload)
	if err := json.Unmarshal([]byte(meta), &m.Metadata); err != nil {
		return fmt.Errorf("parked row %d: metadata: %w", id, err)
	}
	// In an operator's transaction (sqldb.InTx) its commit wakes the
	// forwarders; in the polling transaction there is nobody to wake.
	if err := p.config.Outbox.Insert(ctx, tx, topic, m); err != nil {
		return fmt.Errorf("re-inserting parked row %d into the outbox: %w", id, err)
	}
	_, err = tx.ExecContext(ctx, "UPDATE outbox_parked SET released_at = CURRENT_TIMESTAMP(6) WHERE id = ?", id)
	return err
}

// Count counts the parked rows of db with sqldb.CountUpTo (exact up to
// outbox.BacklogExactLimit, an upper bound above): cheap enough to sample
// every second.
func Count(ctx context.Context, db *sql.DB) (int64, error) {
	return sqldb.CountUpTo(ctx, db, Table, "id", outbox.BacklogExactLimit)
}
