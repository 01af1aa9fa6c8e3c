package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-sql-driver/mysql"

	"github.com/onceflow/onceflow/pkg/causation"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// ErrNoMessageID is in the chain of the error (permanent, reason code
// failure.ReasonInvalidEvent) of a message without a UUID: it could never be
// deduplicated.
var ErrNoMessageID = errors.New("message has no id")

// Table is the inbox table.
const Table = "processed_messages"

// Config configures an Inbox.
type Config struct {
	// DB is the service's database, with Migrations applied. Required.
	DB *sql.DB
	// ConsumerGroup scopes the ids: two consumer groups may both process a
	// message. Required.
	ConsumerGroup string
	// OnDuplicate, if not nil, is called for each duplicate the inbox absorbs
	// (after its transaction committed). It must be cheap and must not block.
	OnDuplicate func()
}

// Inbox makes a consumer idempotent: it records every message it lets through in
// the table processed_messages, keyed by (consumer group, message id), in the same
// database transaction as the handler's effect. Make it with New.
type Inbox struct {
	config Config
}

// New returns the inbox of c; it fails if DB or ConsumerGroup is missing.
func New(c Config) (*Inbox, error) {
	if c.DB == nil || c.ConsumerGroup == "" {
		return nil, errors.New("inbox: DB and ConsumerGroup are required")
	}
	return &Inbox{config: c}, nil
}

// Middleware runs h inside a transaction carried by the message context (see
// sqldb.ContextWithTx and sqldb.InTx), after inserting the message's id. It
// returns (nil, nil) for a duplicate, h's error (rolling back) if h fails, and
// a permanent error wrapping ErrNoMessageID for a message without an id.
// Place it innermost, inside a retry, so that each attempt gets a fresh
// transaction. The events h writes to an outbox in that transaction carry the
// message's id and attempt as their cause (package causation).
func (i *Inbox) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if msg.UUID == "" {
			return nil, failure.PermanentCode(failure.ReasonInvalidEvent, ErrNoMessageID)
		}
		ctx := msg.Context()
		attempt := causation.Attempt(ctx)
		var produced []*message.Message
		duplicate := false
		err := sqldb.InTx(ctx, i.config.DB, func(txCtx context.Context, tx *sql.Tx) error {
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
		if duplicate && i.config.OnDuplicate != nil {
			i.config.OnDuplicate()
		}
		return produced, nil
	}
}

// record inserts the id; fresh is false if it was already there.
func (i *Inbox) record(ctx context.Context, tx *sql.Tx, id string) (fresh bool, err error) {
	_, err = tx.ExecContext(ctx,
		"INSERT INTO processed_messages (consumer_group, message_id) VALUES (?, ?)", i.config.ConsumerGroup, id)
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
func (i *Inbox) Processed(ctx context.Context, id string) (bool, error) {
	var n int
	err := i.config.DB.QueryRowContext(ctx,
		"SELECT COUNT(*) FROM processed_messages WHERE consumer_group = ? AND message_id = ?", i.config.ConsumerGroup, id).Scan(&n)
	return n > 0, err
}
