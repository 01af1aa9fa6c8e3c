package parking

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Behind is the cause of a row parked although nothing is wrong with it: an
// earlier row of the same Kafka key is parked, and this one waits behind it so
// that the key's events keep their order. Every other cause is Kafka's refusal
// (kafka.Refused*).
const Behind = "behind_parked"

// Table is the table of parked rows.
const Table = "outbox_parked"

// Config configures parking.
type Config struct {
	// DB is the database holding the outbox and its parked rows. Required.
	DB *sql.DB
	// Outbox re-inserts the rows a replay or a discard releases, and wakes its
	// forwarders. Required.
	Outbox *outbox.Outbox
	// TopicCreated is the forwarder's (outbox.Config.TopicCreated): Kafka
	// refusing a topic it created as unknown parks the row. nil: never.
	TopicCreated func(topic string) bool
	// Logger gets a line for each row parked, forwarded after a replay or
	// released. Default: none.
	Logger watermill.LoggerAdapter
}

// Parking sets aside the outbox rows Kafka can never take, with the
// later rows of their Kafka key behind them, and gives an operator their list
// and the means to replay or discard them. Make it with New; give its
// Publisher to the forwarder (outbox.Config.Parking).
type Parking struct {
	config Config
	// parked counts the rows parked since New (rows parked behind another included).
	parked atomic.Int64
}

// New returns the parking of c.Outbox's table in c.DB. It fails if DB or
// Outbox is missing.
func New(c Config) (*Parking, error) {
	if c.DB == nil || c.Outbox == nil {
		return nil, errors.New("parking: DB and Outbox are required")
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
	return &Parking{config: c}, nil
}

// Parked is how many rows this process has parked since New.
func (p *Parking) Parked() int64 { return p.parked.Load() }

// Publisher returns next with parking, for outbox.Config.Parking: it runs
// inside the forwarder's polling transaction (wsql.TxFromContext), so a row it
// parks is inserted into outbox_parked and deleted from the outbox (by the
// acknowledgement that follows its nil return) in one commit. A row whose
// refusal kafka.UnfixableReason classifies as unfixable is parked; a row of a
// key that has parked rows is parked behind them without being sent; the
// replayed head of a key is sent, and once Kafka took it the key's next
// parked row is released into the outbox.
//
// Cost when nothing is parked: one `SELECT EXISTS(SELECT 1 FROM outbox_parked)`
// per polling transaction (a batch of up to outbox.Config.BatchSize rows), an
// index probe on an empty table; rows are then published without any per-row
// query. Only while something is parked does each row cost one indexed, locking
// read of its key's queue.
func (p *Parking) Publisher(next message.Publisher) message.Publisher {
	return &parker{out: next, parking: p}
}

// parker is one forwarder's publisher with parking.
type parker struct {
	out     message.Publisher
	parking *Parking

	mu     sync.Mutex
	lastTx wsql.Tx // polling transaction of the cached answer
	parked bool    // whether outbox_parked had rows (or this tx parked one)
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
			return p.park(ctx, tx, topic, m, Behind, "an earlier event of key "+key+" is parked: "+head.messageID)
		}
		if head != nil { // the head of its key, replayed: forward it and release the next
			pubErr := p.out.Publish(topic, m)
			if pubErr == nil {
				return p.forwardedHead(ctx, tx, key, head)
			}
			reason := kafka.UnfixableReason(pubErr, topic, p.parking.config.TopicCreated)
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
	reason := kafka.UnfixableReason(pubErr, topic, p.parking.config.TopicCreated)
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
		return p.parked, nil
	}
	rows, err := tx.QueryContext(ctx, "SELECT EXISTS(SELECT 1 FROM outbox_parked)")
	if err != nil {
		return false, fmt.Errorf("checking parked outbox rows: %w", err)
	}
	defer rows.Close()
	var parked bool
	if rows.Next() {
		if err := rows.Scan(&parked); err != nil {
			return false, err
		}
	}
	p.lastTx, p.parked = tx, parked
	return parked, nil
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
		p.parked = true
	}
	p.mu.Unlock()
	p.logPark(m, m.Metadata.Get(kafka.MetadataKey), reason, kafkaErr)
	return nil
}

func (p *parker) logPark(m *message.Message, key, reason, kafkaErr string) {
	n := p.parking.parked.Add(1)
	p.parking.config.Logger.Error("outbox row parked: the forwarder will not retry it; see `poison parked list`", errors.New(kafkaErr), watermill.LogFields{
		"message_id": m.UUID, "partition_key": key, "reason": reason, "parked_total": n,
	})
}

// forwardedHead resolves a replayed head that Kafka took: deletes it and
// releases the next parked row of its key, if any, into the outbox.
func (p *parker) forwardedHead(ctx context.Context, tx wsql.Tx, key string, head *parkedHead) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM outbox_parked WHERE id = ?", head.id); err != nil {
		return err
	}
	p.parking.config.Logger.Info("parked outbox row forwarded after replay", watermill.LogFields{"message_id": head.messageID, "partition_key": key})
	next, err := queueHead(ctx, tx, key)
	if err != nil || next == nil {
		return err
	}
	return p.parking.release(ctx, tx, next.id)
}
