package messaging

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/pkg/kafka"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Hooks are told where messaging things happen, so that a metrics adapter
// (pkg/metrics) can count them without this package knowing about it. Every
// field is optional; a nil one is not called. Hooks are called on the hot path
// (inside handlers and the forwarder), so they must be cheap and must not
// block; they never change what happens to a message.
type Hooks struct {
	// Forwarded is called after Kafka acknowledged n outbox rows the forwarder
	// published (before the polling transaction deletes them: a crash in
	// between publishes, and counts, them again).
	Forwarded func(n int)
	// Retried is called at the start of each in-place retry of a message
	// (each attempt of a delivery after its first).
	Retried func()
	// Poisoned is called after a message was published to the poison topic,
	// with its public reason code (MetadataReasonCode; ReasonUnclassified if
	// it has no valid one), a bounded set of values.
	Poisoned func(reason string)
	// Duplicate is called when the inbox absorbed a message its consumer group
	// had already processed (the handler did not run).
	Duplicate func()
	// Skipped is called when FailureSkip acknowledged a message without its effect.
	Skipped func()
}

func (h *Hooks) forwarded(n int) {
	if h != nil && h.Forwarded != nil {
		h.Forwarded(n)
	}
}

func (h *Hooks) retried() {
	if h != nil && h.Retried != nil {
		h.Retried()
	}
}

func (h *Hooks) poisoned(reason string) {
	if h != nil && h.Poisoned != nil {
		h.Poisoned(reason)
	}
}

func (h *Hooks) duplicate() {
	if h != nil && h.Duplicate != nil {
		h.Duplicate()
	}
}

func (h *Hooks) skipped() {
	if h != nil && h.Skipped != nil {
		h.Skipped()
	}
}

// SetHooks makes the forwarders built afterwards report to h (Forwarded).
func (o *Outbox) SetHooks(h Hooks) { o.hooks = &h }

// SetHooks makes the consumers report to h (Retried, Poisoned, Duplicate,
// Skipped). Call before Run.
func (cs *Consumers) SetHooks(h Hooks) { cs.hooks = h }

// OnRouter registers f, called with the consumers' Watermill router once it is
// built and before it runs (e.g. to add Watermill's metrics component). Call
// before Run.
func (cs *Consumers) OnRouter(f func(*message.Router)) { cs.onRouter = append(cs.onRouter, f) }

// Subscriptions lists the consumer group and topic of every registered
// consumer and projection (projections have their own group), in registration
// order, including duplicates if a group reads a topic twice.
func (cs *Consumers) Subscriptions() []kafka.Subscription {
	subs := make([]kafka.Subscription, 0, len(cs.handlers))
	for _, h := range cs.handlers {
		group := cs.config.ConsumerGroup
		if h.projection {
			group += "." + h.name
		}
		subs = append(subs, kafka.Subscription{Group: group, Topic: h.topic})
	}
	return subs
}

// countingPublisher reports every batch its publisher accepted to hooks.
type countingPublisher struct {
	message.Publisher
	hooks *Hooks
}

// Publish implements message.Publisher.
func (p countingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	p.hooks.forwarded(len(msgs))
	return nil
}

// Backlog is what waits in a service's outbox.
type Backlog struct {
	// Pending is the number of rows waiting: exact up to backlogExactLimit
	// rows, an upper bound above (see OutboxBacklog).
	Pending int64
	// OldestAge is how long the oldest waiting row has waited (0 if none),
	// by the database's clock.
	OldestAge time.Duration
	// Parked is the number of rows in outbox_parked (same precision as Pending).
	Parked int64
}

// backlogExactLimit bounds the index entries one backlog sample counts.
const backlogExactLimit = 10000

// OutboxBacklog samples the outbox of db cheaply enough to run every second
// under any backlog. Each query reads at most backlogExactLimit+1 entries of
// a primary key (InnoDB counts them in the clustered index; no row is
// locked, the reads are consistent snapshots):
//
//   - pending: COUNT(*) over a LIMITed subquery; when it hits the limit the
//     backlog is large and MAX(offset)-MIN(offset)+1 (two reads at the ends of
//     the primary key) is reported instead, an upper bound (rolled-back
//     inserts and parked rows leave gaps);
//   - oldest age: the created_at of the row with the smallest offset (ORDER BY
//     offset LIMIT 1, one read at the start of the primary key), subtracted
//     from the database's CURRENT_TIMESTAMP so that clock skew does not count;
//   - parked: the same bounded count over outbox_parked's primary key.
//
// It fails if the database does not answer.
func OutboxBacklog(ctx context.Context, db *stdsql.DB) (Backlog, error) {
	var b Backlog
	var err error
	if b.Pending, err = boundedCount(ctx, db, "watermill_outbox", "offset"); err != nil {
		return b, err
	}
	var age stdsql.NullInt64
	err = db.QueryRowContext(ctx,
		"SELECT TIMESTAMPDIFF(MICROSECOND, created_at, CURRENT_TIMESTAMP(6)) FROM watermill_outbox ORDER BY `offset` LIMIT 1").Scan(&age)
	switch {
	case errors.Is(err, stdsql.ErrNoRows):
	case err != nil:
		return b, fmt.Errorf("outbox oldest row: %w", err)
	case age.Valid && age.Int64 > 0:
		b.OldestAge = time.Duration(age.Int64) * time.Microsecond
	}
	if b.Parked, err = boundedCount(ctx, db, "outbox_parked", "id"); err != nil {
		return b, err
	}
	return b, nil
}

// boundedCount counts the rows of table (whose primary key is the integer
// column key) reading at most backlogExactLimit+1 index entries, and estimates
// from the key's range beyond that.
func boundedCount(ctx context.Context, db *stdsql.DB, table, key string) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, fmt.Sprintf(
		"SELECT COUNT(*) FROM (SELECT 1 FROM `%s` ORDER BY `%s` LIMIT %d) t", table, key, backlogExactLimit+1)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting %s: %w", table, err)
	}
	if n <= backlogExactLimit {
		return n, nil
	}
	err = db.QueryRowContext(ctx, fmt.Sprintf(
		"SELECT COALESCE(MAX(`%[2]s`) - MIN(`%[2]s`) + 1, 0) FROM `%[1]s`", table, key)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("estimating %s: %w", table, err)
	}
	return n, nil
}
