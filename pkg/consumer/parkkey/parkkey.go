package parkkey

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cenkalti/backoff/v5"
	"github.com/go-sql-driver/mysql"

	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/msgtrace"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations create the tables of parked keys and their messages, tracked in
// goose_parkkey_version.
var Migrations = sqldb.Migrations{Table: "goose_parkkey_version", FS: migrations, Dir: "migrations"}

// ReasonBehind is the reason code of a message parked behind its key's head:
// an earlier message of its key is parked (or, for a message that failed on
// another path while its key was being parked, parked first).
const ReasonBehind = "behind_parked"

// Config configures the park-key strategy (env prefix PARK_KEY_, e.g.
// PAYMENT_PARK_KEY_POLL_INTERVAL).
type Config struct {
	// PollInterval is how often running consumers look for replay requests of
	// parked keys (marks the admin tools leave in the database, possibly from
	// another process). Default 1 s.
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
		return errors.New("park-key: poll interval must be positive")
	}
	return nil
}

// ParkKey is the park-key strategy (a consumer.Strategy and consumer.Runner).
// Make it with New; one value serves every consumer given it, and its Run
// carries out the replay requests of all of them.
type ParkKey struct {
	config Config

	mu        sync.Mutex
	consumers map[string]consumer.Consumer // by name

	// beforeCommit, if not nil, runs inside every release step's transaction
	// after its writes (emptied: the step deleted the key's row). Only this
	// package's tests set it, to hold a release while it holds the key's lock.
	beforeCommit func(key string, emptied bool)
}

// New returns the park-key strategy of c (zero fields take their defaults); it
// fails on an invalid c.
func New(c Config) (*ParkKey, error) {
	c = c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &ParkKey{config: c, consumers: map[string]consumer.Consumer{}}, nil
}

// keyQueues is the parked-key store of one consumer (consumer group and
// handler) in the consumer's own database: tables consumer_parked_keys (one
// row per parked key, also the key's lock) and consumer_parked_messages.
type keyQueues struct {
	db                    *sql.DB
	group, handler, topic string
}

func queuesOf(c consumer.Consumer) keyQueues {
	return keyQueues{db: c.DB, group: c.Group, handler: c.Name, topic: c.Topic}
}

// parkedKey returns the key a message is parked under: its Kafka key
// (kafka.MetadataKey, the order id), or, for a message without one, its own
// id (a keyless message forms a queue of its own and holds back nothing else).
func parkedKey(msg *message.Message) string {
	if k := msg.Metadata.Get(kafka.MetadataKey); k != "" {
		return k
	}
	return msg.UUID
}

// lockKey reads the key's row FOR UPDATE: the lock the park check, parking a
// head and every release step take, so that none of them interleaves with
// another on the same key. parked is false when the key has no row; then
// nothing is locked (READ COMMITTED takes no gap lock), and a message that
// passed the check runs its handler without holding a lock: the one consumer
// of the key's partition never runs two of the key's messages at once, but
// another path may park the key meanwhile (the delayed path, or a second
// consumer of the partition during a rebalance). Such creators are
// serialised by the row's primary key instead: parkHead's INSERT waits for a
// concurrent one, and the later finds the key parked and parks behind its
// head (one head per key).
func (q keyQueues) lockKey(ctx context.Context, tx *sql.Tx, key string) (parked, replayRequested bool, err error) {
	err = tx.QueryRowContext(ctx, "SELECT replay_requested_at IS NOT NULL FROM consumer_parked_keys WHERE consumer_group = ? AND handler = ? AND partition_key = ? FOR UPDATE",
		q.group, q.handler, key).Scan(&replayRequested)
	if errors.Is(err, sql.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("park-key: locking key %s: %w", key, err)
	}
	return true, replayRequested, nil
}

// insert parks msg in the key's queue (after every message already there). A
// message already parked (redelivered by Kafka) keeps its place.
func (q keyQueues) insert(ctx context.Context, tx *sql.Tx, key string, msg *message.Message, code, errText string, failures int) error {
	meta, err := json.Marshal(msg.Metadata)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO consumer_parked_messages
		(consumer_group, handler, partition_key, message_id, topic, payload, metadata, reason_code, error, failures)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE id = id`,
		q.group, q.handler, key, msg.UUID, q.topic, []byte(msg.Payload), string(meta), code, errText, failures)
	if err != nil {
		return fmt.Errorf("park-key: parking message %s of key %s: %w", msg.UUID, key, err)
	}
	return nil
}

// parkBehindIfParked parks msg behind its key's head if the key is parked, and
// reports whether it did. It waits for a release step or a parking of the key
// in progress (the key's lock), so a message never joins a queue that a
// release is emptying: it sees the queue either before the step (and is
// released after the messages already there) or after the release deleted it
// (and runs).
func (q keyQueues) parkBehindIfParked(ctx context.Context, msg *message.Message) (parked bool, err error) {
	key := parkedKey(msg)
	err = sqldb.InTx(ctx, q.db, func(ctx context.Context, tx *sql.Tx) error {
		var lockErr error
		if parked, _, lockErr = q.lockKey(ctx, tx, key); lockErr != nil || !parked {
			return lockErr
		}
		return q.insert(ctx, tx, key, msg, ReasonBehind, "an earlier message of key "+key+" is parked", 0)
	})
	return parked, err
}

// parkHead parks msg, which failed with cause, as the head of its key: it
// creates the key's row (taking its lock) and stores msg with its reason code.
// If the key's row exists (another path parked the key after msg passed its
// check), msg is parked behind that head instead, with its own failure in the
// error text: a key has one head. head reports which it did.
func (q keyQueues) parkHead(ctx context.Context, msg *message.Message, cause error) (head bool, err error) {
	key := parkedKey(msg)
	err = sqldb.InTx(ctx, q.db, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO consumer_parked_keys (consumer_group, handler, partition_key) VALUES (?, ?, ?)`,
			q.group, q.handler, key)
		var myErr *mysql.MySQLError
		if errors.As(err, &myErr) && myErr.Number == 1062 { // ER_DUP_ENTRY: parked meanwhile
			head = false
			return q.insert(ctx, tx, key, msg, ReasonBehind,
				"key "+key+" was parked by another path meanwhile; this message failed too: "+cause.Error(), 1)
		}
		if err != nil {
			return fmt.Errorf("park-key: parking key %s: %w", key, err)
		}
		head = true
		return q.insert(ctx, tx, key, msg, failure.ReasonCode(cause), cause.Error(), 1)
	})
	return head, err
}

// Retryable implements consumer.Strategy: the stack's usual rule.
func (p *ParkKey) Retryable(err error) bool { return consumer.RetryableInPlace(err) }

// Steps implements consumer.Strategy: a message of a parked key is parked
// behind it without running the rest of the stack; a message the stack gives
// up on (consumer.GivesUpOn) is parked as its key's head. Both are then
// acknowledged. An error reading or writing the parked tables is returned (the
// message is nacked and delivered again), and so is an error the strategy does
// not give up on.
func (p *ParkKey) Steps(c consumer.Consumer) ([]message.HandlerMiddleware, error) {
	p.mu.Lock()
	p.consumers[c.Name] = c
	p.mu.Unlock()
	q := queuesOf(c)
	return []message.HandlerMiddleware{func(next message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := msg.Context()
			behind, err := q.parkBehindIfParked(ctx, msg)
			if err != nil {
				return nil, err
			}
			if behind {
				msgtrace.GivenUp(msg, "parked behind its key", "")
				c.Logger.WarnContext(ctx, "message parked behind its key's head", "handler", c.Name, "message_id", msg.UUID, "partition_key", parkedKey(msg))
				return nil, nil
			}
			out, err := next(msg)
			if err == nil || !consumer.GivesUpOn(err) {
				return out, err
			}
			head, perr := q.parkHead(ctx, msg, err)
			if perr != nil {
				return nil, errors.Join(err, perr)
			}
			if !head {
				msgtrace.GivenUp(msg, "parked behind its key", failure.ReasonCode(err))
				c.Logger.WarnContext(ctx, "message failed and was parked behind its key's head, which another path parked meanwhile",
					"handler", c.Name, "message_id", msg.UUID, "partition_key", parkedKey(msg), "reason_code", failure.ReasonCode(err), "err", err)
				return nil, nil
			}
			msgtrace.GivenUp(msg, "parked", failure.ReasonCode(err))
			c.Logger.ErrorContext(ctx, "message parked as the head of its key: later messages of the key wait behind it; see `poison keys list`",
				"handler", c.Name, "message_id", msg.UUID, "partition_key", parkedKey(msg), "reason_code", failure.ReasonCode(err), "err", err)
			return nil, nil
		}
	}}, nil
}

// Run implements consumer.Runner: the poller that carries out replay requests
// of the keys parked by the consumers this strategy serves, every
// PollInterval, until ctx ends. A release step in progress when it ends is
// rolled back whole.
func (p *ParkKey) Run(ctx context.Context) {
	t := time.NewTicker(p.config.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		byName := make(map[string]consumer.Consumer, len(p.consumers))
		for name, c := range p.consumers {
			byName[name] = c
		}
		p.mu.Unlock()
		if err := p.releaseRequested(ctx, byName); err != nil && ctx.Err() == nil {
			for _, c := range byName {
				c.Logger.Warn("park-key: looking for replay requests", "err", err)
				break
			}
		}
	}
}

// releaseRequested releases every key of the consumers in byName whose replay
// was requested (one consumer group: the service's).
func (p *ParkKey) releaseRequested(ctx context.Context, byName map[string]consumer.Consumer) error {
	var first consumer.Consumer
	for _, c := range byName {
		first = c
		break
	}
	if first.DB == nil {
		return nil
	}
	rows, err := first.DB.QueryContext(ctx, `SELECT handler, partition_key FROM consumer_parked_keys
		WHERE consumer_group = ? AND replay_requested_at IS NOT NULL ORDER BY replay_requested_at`, first.Group)
	if err != nil {
		return err
	}
	type req struct{ handler, key string }
	var reqs []req
	for rows.Next() {
		var r req
		if err := rows.Scan(&r.handler, &r.key); err != nil {
			rows.Close()
			return err
		}
		reqs = append(reqs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range reqs {
		c, ok := byName[r.handler]
		if !ok {
			continue // another strategy now, or another service's handler
		}
		if err := p.releaseKey(ctx, c, r.key); err != nil && ctx.Err() == nil {
			c.Logger.Warn("park-key: release interrupted; it is tried again", "handler", c.Name, "partition_key", r.key, "err", err)
		}
	}
	return nil
}

// stepFailed wraps a handler's error in a release step.
type stepFailed struct{ err error }

func (e stepFailed) Error() string { return e.err.Error() }
func (e stepFailed) Unwrap() error { return e.err }

// releaseKey releases a parked key of consumer c, in order: each step runs the
// key's head through the inbox and c's handler in one transaction that holds
// the key's lock, then deletes it; the step that resolves the last message
// deletes the key's row. A handler that fails (after the Retry settings'
// attempts) ends the release: its message stays the key's head with its new
// reason code, and the replay request is cleared. An outage or a shutdown
// also ends it, but keeps the request, so the poller tries again; releaseKey
// returns that kind of error.
func (p *ParkKey) releaseKey(ctx context.Context, c consumer.Consumer, key string) error {
	q := queuesOf(c)
	for {
		more, err := p.releaseStepWithRetries(ctx, c, q, key)
		var failed stepFailed
		switch {
		case err == nil && more:
			continue
		case err == nil:
			return nil
		case errors.As(err, &failed) && consumer.GivesUpOn(failed.err):
			return reparkHead(ctx, c, q, key, failed.err)
		default:
			return err
		}
	}
}

// releaseStepWithRetries runs one release step, tried again like a consumer's
// handler (consumer.RetryConfig, a fresh transaction each time) while the
// handler fails with an error that is neither permanent nor interrupted. more
// reports that the key still has parked messages to release.
func (p *ParkKey) releaseStepWithRetries(ctx context.Context, c consumer.Consumer, q keyQueues, key string) (more bool, err error) {
	r := c.Retry
	b := &backoff.ExponentialBackOff{InitialInterval: r.InitialInterval, MaxInterval: r.MaxInterval,
		Multiplier: r.Multiplier, RandomizationFactor: r.RandomizationFactor}
	b.Reset()
	for attempt := 0; ; attempt++ {
		more, err := p.releaseStep(ctx, c, q, key)
		var failed stepFailed
		if err == nil || !errors.As(err, &failed) || failure.IsPermanent(err) || consumer.IsInterrupted(err) || attempt >= max(r.MaxRetries, 0) {
			return more, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(b.NextBackOff()):
		}
	}
}

// releaseStep processes the head of a parked key in one transaction that holds
// the key's lock, if the key's replay is requested. more reports that parked
// messages of the key remain after it; when none remain the step deleted the
// key's row.
func (p *ParkKey) releaseStep(ctx context.Context, c consumer.Consumer, q keyQueues, key string) (more bool, err error) {
	var released string
	err = sqldb.InTx(ctx, q.db, func(ctx context.Context, tx *sql.Tx) error {
		parked, requested, err := q.lockKey(ctx, tx, key)
		if err != nil || !parked || !requested {
			return err
		}
		head, err := q.head(ctx, tx, key)
		if err != nil {
			return err
		}
		if head != nil {
			head.SetContext(sqldb.ContextWithTx(ctx, tx))
			if _, err := c.Handle(head); err != nil {
				return stepFailed{err}
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM consumer_parked_messages WHERE consumer_group = ? AND handler = ? AND message_id = ?",
				q.group, q.handler, head.UUID); err != nil {
				return err
			}
			released = head.UUID
		}
		if err := tx.QueryRowContext(ctx, "SELECT EXISTS(SELECT 1 FROM consumer_parked_messages WHERE consumer_group = ? AND handler = ? AND partition_key = ?)",
			q.group, q.handler, key).Scan(&more); err != nil {
			return err
		}
		if !more {
			if _, err := tx.ExecContext(ctx, "DELETE FROM consumer_parked_keys WHERE consumer_group = ? AND handler = ? AND partition_key = ?",
				q.group, q.handler, key); err != nil {
				return err
			}
		}
		if hook := p.beforeCommit; hook != nil {
			hook(key, !more)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if released != "" {
		c.Logger.Info("parked message released", "handler", q.handler, "message_id", released, "partition_key", key, "key_released", !more)
	}
	return more, nil
}

// head returns the first parked message of key as a message (nil if none).
func (q keyQueues) head(ctx context.Context, tx *sql.Tx, key string) (*message.Message, error) {
	var id, meta string
	var payload []byte
	err := tx.QueryRowContext(ctx, `SELECT message_id, payload, metadata FROM consumer_parked_messages
		WHERE consumer_group = ? AND handler = ? AND partition_key = ? ORDER BY id LIMIT 1`, q.group, q.handler, key).Scan(&id, &payload, &meta)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("park-key: reading the head of key %s: %w", key, err)
	}
	msg := message.NewMessage(id, payload)
	if err := json.Unmarshal([]byte(meta), &msg.Metadata); err != nil {
		return nil, fmt.Errorf("park-key: metadata of parked message %s: %w", id, err)
	}
	return msg, nil
}

// reparkHead records that the key's head failed again with cause during a
// release: its new reason code, one more failure, and the replay request
// cleared.
func reparkHead(ctx context.Context, c consumer.Consumer, q keyQueues, key string, cause error) error {
	return sqldb.InTx(ctx, q.db, func(ctx context.Context, tx *sql.Tx) error {
		if _, _, err := q.lockKey(ctx, tx, key); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE consumer_parked_messages SET reason_code = ?, error = ?, failures = failures + 1
			WHERE consumer_group = ? AND handler = ? AND partition_key = ? ORDER BY id LIMIT 1`,
			failure.ReasonCode(cause), cause.Error(), q.group, q.handler, key); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE consumer_parked_keys SET replay_requested_at = NULL WHERE consumer_group = ? AND handler = ? AND partition_key = ?",
			q.group, q.handler, key); err != nil {
			return err
		}
		c.Logger.Error("parked key's release ended: a message failed again and is the key's new head",
			"handler", q.handler, "partition_key", key, "reason_code", failure.ReasonCode(cause), "err", cause)
		return nil
	})
}
