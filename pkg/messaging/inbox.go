package messaging

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/onceflow/onceflow/pkg/causation"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/sqldb"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-sql-driver/mysql"
)

// ErrNoMessageID is returned (as a permanent error) for a message without a UUID:
// it could never be deduplicated.
var ErrNoMessageID = errors.New("message has no id")

// Inbox makes a consumer idempotent: it records every message it lets through in
// the table processed_messages, keyed by (consumer group, message id), in the same
// database transaction as the handler's effect.
//
//   - The record commits with the effect, or neither does: a crash or error at any
//     point leaves either both or nothing, and redelivery repeats or skips as a
//     whole.
//   - A message whose id is already recorded is acknowledged without running the
//     handler.
//   - Two deliveries of one message running at once (two replicas during a
//     rebalance) serialise on the unique key: the second waits and then sees the
//     duplicate.
//
// Unlike Watermill's Deduplicator middleware, nothing is recorded when the handler
// fails, the record survives restarts and is shared by replicas, and the key is the
// message id (which survives the outbox and forwarder), not a hash of the payload.
type Inbox struct {
	// DB is the service's database; the table processed_messages is created by Migrate.
	DB *sql.DB
	// ConsumerGroup scopes the ids: two consumer groups may both process a message.
	ConsumerGroup string
	// OnDuplicate, if not nil, is called for each duplicate the inbox absorbs
	// (after its transaction committed). It must be cheap and must not block.
	OnDuplicate func()
}

// Middleware returns a router middleware that runs h inside a transaction carried
// by the message context (see ContextWithTx and InTx), after inserting the
// message's id. It returns (nil, nil) for a duplicate, h's error (rolling back)
// if h fails, and a permanent error for a message without an id. Place it
// innermost, inside Retry, so that each attempt gets a fresh transaction.
func (i Inbox) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if msg.UUID == "" {
			return nil, failure.PermanentCode(failure.ReasonInvalidEvent, ErrNoMessageID)
		}
		ctx := msg.Context()
		attempt := causation.Attempt(ctx)
		var produced []*message.Message
		duplicate := false
		err := sqldb.InTx(ctx, i.DB, func(txCtx context.Context, tx *sql.Tx) error {
			fresh, err := i.record(txCtx, tx, msg.UUID)
			duplicate = err == nil && !fresh
			if err != nil || !fresh {
				return err
			}
			msg.SetContext(causation.WithCause(txCtx, msg.UUID, attempt))
			defer msg.SetContext(ctx)
			produced, err = h(msg)
			return err
		})
		if err != nil {
			return nil, err
		}
		if duplicate && i.OnDuplicate != nil {
			i.OnDuplicate()
		}
		return produced, nil
	}
}

// record inserts the id; fresh is false if it was already there.
func (i Inbox) record(ctx context.Context, tx *sql.Tx, id string) (fresh bool, err error) {
	_, err = tx.ExecContext(ctx,
		"INSERT INTO processed_messages (consumer_group, message_id) VALUES (?, ?)", i.ConsumerGroup, id)
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) && myErr.Number == 1062 { // ER_DUP_ENTRY
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inbox: recording message %s: %w", id, err)
	}
	return true, nil
}

// Processed reports whether the consumer group has processed the message id.
func (i Inbox) Processed(ctx context.Context, id string) (bool, error) {
	var n int
	err := i.DB.QueryRowContext(ctx,
		"SELECT COUNT(*) FROM processed_messages WHERE consumer_group = ? AND message_id = ?", i.ConsumerGroup, id).Scan(&n)
	return n > 0, err
}
