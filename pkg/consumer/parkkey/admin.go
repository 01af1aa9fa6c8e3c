package parkkey

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// ParkedKey is a key parked by a consumer with the park-key strategy: its
// queue of parked messages, head first.
type ParkedKey struct {
	ConsumerGroup string `json:"consumer_group"`
	Handler       string `json:"handler"`
	// Key is the Kafka key (the order id), or the id of a keyless message.
	Key      string `json:"key"`
	ParkedAt string `json:"parked_at"`
	// ReplayRequested is true from a replay request until the consumers have
	// released the key (then the key is gone) or its release ended on a
	// failure.
	ReplayRequested bool `json:"replay_requested"`
	Replays         int  `json:"replays"`
	// Messages is how many messages the key's queue holds, its head included.
	Messages int `json:"messages"`
	// Head is the first parked message: the one that failed.
	Head ParkedMessage `json:"head"`
	// Queue is every parked message of the key, head first (only from
	// Admin.Get, with payloads).
	Queue []ParkedMessage `json:"queue,omitempty"`
}

// ParkedMessage is one message of a parked key's queue.
type ParkedMessage struct {
	// ID orders the queue.
	ID        int64  `json:"id"`
	MessageID string `json:"message_id"`
	Topic     string `json:"topic"`
	EventType string `json:"event_type,omitempty"`
	// ReasonCode is the public code of the failure (failure.ReasonCode), or
	// ReasonBehind for a message that waits behind the head.
	ReasonCode string `json:"reason_code"`
	// Error is the full error text (admin only: it may hold internals).
	Error    string `json:"error"`
	ParkedAt string `json:"parked_at"`
	// Failures counts how often the message failed for good (parked, and each
	// release that ended on it).
	Failures int               `json:"failures"`
	Payload  string            `json:"payload,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// queryer is a *sql.DB or a *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Errors of the parked-key operations.
var (
	// ErrKeyNotParked: no consumer has that key parked.
	ErrKeyNotParked = errors.New("no parked key with that name")
	// ErrAmbiguousKey: more than one consumer (group and handler) has that key
	// parked; name the handler.
	ErrAmbiguousKey = errors.New("more than one consumer has that key parked: name the handler")
	// ErrReplayPending: the key's replay was requested and the consumers have
	// not finished it; discarding its head now could race with the release.
	ErrReplayPending = errors.New("the key's replay is pending: wait for the consumers to release it")
)

// Admin is the operator's view of the parked keys of a service's database
// (all consumer groups and handlers that use it). Its changes are marks that
// the running consumers carry out (a replay) or that take the key's lock like
// the consumers do (a discard), so they are safe while the service runs, from
// another process.
type Admin struct{ DB *sql.DB }

// List returns every parked key with its head (without payload), oldest first.
func (p Admin) List(ctx context.Context) ([]ParkedKey, error) {
	rows, err := p.DB.QueryContext(ctx, `SELECT k.consumer_group, k.handler, k.partition_key,
		DATE_FORMAT(k.parked_at, '%Y-%m-%dT%H:%i:%s.%fZ'), k.replay_requested_at IS NOT NULL, k.replays,
		(SELECT COUNT(*) FROM consumer_parked_messages m WHERE m.consumer_group = k.consumer_group AND m.handler = k.handler AND m.partition_key = k.partition_key)
		FROM consumer_parked_keys k ORDER BY k.parked_at, k.partition_key`)
	if err != nil {
		return nil, err
	}
	var out []ParkedKey
	for rows.Next() {
		var k ParkedKey
		if err := rows.Scan(&k.ConsumerGroup, &k.Handler, &k.Key, &k.ParkedAt, &k.ReplayRequested, &k.Replays, &k.Messages); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		q, err := p.queue(ctx, p.DB, out[i], false, "LIMIT 1")
		if err != nil {
			return nil, err
		}
		if len(q) > 0 {
			out[i].Head = q[0]
		}
	}
	return out, nil
}

// Get returns the parked key (of handler, if not empty) with its whole queue,
// payloads included. Errors: ErrKeyNotParked, ErrAmbiguousKey.
func (p Admin) Get(ctx context.Context, key, handler string) (ParkedKey, error) {
	k, err := p.find(ctx, p.DB, false, key, handler)
	if err != nil {
		return k, err
	}
	if k.Queue, err = p.queue(ctx, p.DB, k, true, ""); err != nil {
		return k, err
	}
	k.Messages = len(k.Queue)
	if len(k.Queue) > 0 {
		k.Head = k.Queue[0]
	}
	return k, nil
}

// Replay requests the release of the parked key (of handler, if not empty):
// the running consumers' poller runs its head, then each message behind it, in
// order, through the inbox and the handler, and ends at a message that fails
// again (the key's new head). Repeating a pending request changes nothing.
// Errors: ErrKeyNotParked, ErrAmbiguousKey.
func (p Admin) Replay(ctx context.Context, key, handler string) (ParkedKey, error) {
	var k ParkedKey
	err := sqldb.InTx(ctx, p.DB, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		if k, err = p.find(ctx, tx, true, key, handler); err != nil || k.ReplayRequested {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE consumer_parked_keys SET replay_requested_at = CURRENT_TIMESTAMP(6), replays = replays + 1
			WHERE consumer_group = ? AND handler = ? AND partition_key = ?`, k.ConsumerGroup, k.Handler, k.Key)
		k.ReplayRequested = true
		return err
	})
	return k, err
}

// Discard deletes the head of the parked key (of handler, if not empty): an
// operator gave its message up for good. It is not recorded in the inbox, so a
// later delivery of the same message would be processed. If messages wait
// behind it, the key's release is requested, so they flow in order; if none
// do, the key is no longer parked. It returns the discarded message. Errors:
// ErrKeyNotParked, ErrAmbiguousKey, ErrReplayPending.
func (p Admin) Discard(ctx context.Context, key, handler string) (ParkedMessage, error) {
	var head ParkedMessage
	err := sqldb.InTx(ctx, p.DB, func(ctx context.Context, tx *sql.Tx) error {
		k, err := p.find(ctx, tx, true, key, handler)
		if err != nil {
			return err
		}
		if k.ReplayRequested {
			return ErrReplayPending
		}
		q, err := p.queue(ctx, tx, k, true, "LIMIT 2")
		if err != nil {
			return err
		}
		where := "WHERE consumer_group = ? AND handler = ? AND partition_key = ?"
		if len(q) == 0 {
			_, err = tx.ExecContext(ctx, "DELETE FROM consumer_parked_keys "+where, k.ConsumerGroup, k.Handler, k.Key)
			return err
		}
		head = q[0]
		if _, err := tx.ExecContext(ctx, "DELETE FROM consumer_parked_messages WHERE id = ?", head.ID); err != nil {
			return err
		}
		if len(q) == 1 {
			_, err = tx.ExecContext(ctx, "DELETE FROM consumer_parked_keys "+where, k.ConsumerGroup, k.Handler, k.Key)
		} else {
			_, err = tx.ExecContext(ctx, "UPDATE consumer_parked_keys SET replay_requested_at = CURRENT_TIMESTAMP(6) "+where, k.ConsumerGroup, k.Handler, k.Key)
		}
		return err
	})
	return head, err
}

// find returns the one parked key named key (of handler, if not empty).
// With forUpdate it locks the key's row, the lock the consumers take.
func (p Admin) find(ctx context.Context, q queryer, forUpdate bool, key, handler string) (ParkedKey, error) {
	lock := ""
	if forUpdate {
		lock = " FOR UPDATE"
	}
	rows, err := q.QueryContext(ctx, `SELECT consumer_group, handler, partition_key, DATE_FORMAT(parked_at, '%Y-%m-%dT%H:%i:%s.%fZ'),
		replay_requested_at IS NOT NULL, replays FROM consumer_parked_keys WHERE partition_key = ? AND (? = '' OR handler = ?)`+lock, key, handler, handler)
	if err != nil {
		return ParkedKey{}, err
	}
	defer rows.Close()
	var found []ParkedKey
	for rows.Next() {
		var k ParkedKey
		if err := rows.Scan(&k.ConsumerGroup, &k.Handler, &k.Key, &k.ParkedAt, &k.ReplayRequested, &k.Replays); err != nil {
			return k, err
		}
		found = append(found, k)
	}
	if err := rows.Err(); err != nil {
		return ParkedKey{}, err
	}
	switch len(found) {
	case 0:
		return ParkedKey{}, fmt.Errorf("%w: %s", ErrKeyNotParked, key)
	case 1:
		return found[0], nil
	default:
		var names []string
		for _, k := range found {
			names = append(names, k.ConsumerGroup+"/"+k.Handler)
		}
		return ParkedKey{}, fmt.Errorf("%w (%s)", ErrAmbiguousKey, strings.Join(names, ", "))
	}
}

// queue returns the parked messages of k, head first.
func (p Admin) queue(ctx context.Context, q queryer, k ParkedKey, full bool, limit string) ([]ParkedMessage, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, message_id, topic, reason_code, error, DATE_FORMAT(parked_at, '%Y-%m-%dT%H:%i:%s.%fZ'),
		failures, payload, metadata FROM consumer_parked_messages
		WHERE consumer_group = ? AND handler = ? AND partition_key = ? ORDER BY id `+limit, k.ConsumerGroup, k.Handler, k.Key)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ParkedMessage
	for rows.Next() {
		var m ParkedMessage
		var payload []byte
		var meta string
		if err := rows.Scan(&m.ID, &m.MessageID, &m.Topic, &m.ReasonCode, &m.Error, &m.ParkedAt, &m.Failures, &payload, &meta); err != nil {
			return nil, err
		}
		var md map[string]string
		if err := json.Unmarshal([]byte(meta), &md); err == nil {
			m.EventType = md[kafka.MetadataEventType]
		}
		if full {
			m.Payload, m.Metadata = string(payload), md
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
