package dryrun

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/causation"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// Event is an event the handler would emit.
type Event struct {
	ID    string `json:"id"`
	Topic string `json:"topic"`
	Type  string `json:"type,omitempty"`
	Key   string `json:"key,omitempty"`
	// Payload is the event's body as text.
	Payload string `json:"payload"`
}

// Result is what the handler would change.
type Result struct {
	// WouldSucceed says the handler returned no error; otherwise ReasonCode
	// is its error's public code (failure.ReasonCode).
	WouldSucceed bool   `json:"would_succeed"`
	ReasonCode   string `json:"reason_code,omitempty"`
	// Ran is how many messages the handler ran on, the failed one included
	// (RunQueue stops at the first failure, as a release of a queue does);
	// FailedMessageID is the id of that failed one.
	Ran             int    `json:"ran"`
	FailedMessageID string `json:"failed_message_id,omitempty"`
	// Events are the events it would emit, in outbox order.
	Events []Event `json:"events"`
	// Before and After are the state read before and after the handler ran,
	// in the same transaction (State's answer).
	Before any `json:"before,omitempty"`
	After  any `json:"after,omitempty"`
}

// State reads, inside the dry run's transaction, the state the handler may
// change (the order, the payment), for people to compare.
type State func(ctx context.Context, tx *sql.Tx) (any, error)

// The dry run's reads of the outbox: where it ends before the handler runs,
// and the rows written after that.
const (
	lastOffsetQuery = "SELECT COALESCE(MAX(`offset`), 0) FROM `" + outbox.Table + "`"
	emittedQuery    = "SELECT payload FROM `" + outbox.Table + "` WHERE `offset` > ? ORDER BY `offset`"
)

// errRollback ends the dry run's transaction.
var errRollback = errors.New("dry run: roll back")

// Run runs handle on a copy of msg in a transaction of db that is rolled
// back, and returns what it would change. state may be nil.
func Run(ctx context.Context, db *sql.DB, handle message.HandlerFunc, msg *message.Message, state State) (Result, error) {
	return RunQueue(ctx, db, handle, []*message.Message{msg}, state)
}

// RunQueue runs handle on copies of msgs, in order, in one transaction of db
// that is rolled back, and returns what they would change together: each
// message sees what the ones before it wrote, as when a parked key's queue is
// released. It stops at the first message the handler fails on, as the
// release does, and leaves out what that message's handling wrote (a
// savepoint per message): a handling that fails commits nothing. state may be
// nil.
func RunQueue(ctx context.Context, db *sql.DB, handle message.HandlerFunc, msgs []*message.Message, state State) (Result, error) {
	r := Result{Events: []Event{}, WouldSucceed: true}
	err := sqldb.InTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error {
		var last int64
		if err := tx.QueryRowContext(ctx, lastOffsetQuery).Scan(&last); err != nil {
			return fmt.Errorf("dry run: outbox: %w", err)
		}
		var err error
		if state != nil {
			if r.Before, err = state(ctx, tx); err != nil {
				return fmt.Errorf("dry run: state before: %w", err)
			}
		}
		ids := make(map[string]bool, len(msgs))
		for _, msg := range msgs {
			ids[msg.UUID] = true
			m := msg.Copy()
			m.SetContext(causation.WithAttemptCounter(ctx))
			r.Ran++
			if _, err := tx.ExecContext(ctx, "SAVEPOINT dry_run_message"); err != nil {
				return fmt.Errorf("dry run: savepoint: %w", err)
			}
			if _, herr := handle(m); herr != nil {
				// A failed handling commits nothing: what it wrote before it
				// failed is not part of the answer.
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT dry_run_message"); err != nil {
					return fmt.Errorf("dry run: rollback to savepoint: %w", err)
				}
				r.WouldSucceed, r.ReasonCode, r.FailedMessageID = false, failure.ReasonCode(herr), msg.UUID
				break
			}
		}
		if state != nil {
			if r.After, err = state(ctx, tx); err != nil {
				return fmt.Errorf("dry run: state after: %w", err)
			}
		}
		if r.Events, err = emitted(ctx, tx, last, ids); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		return Result{}, err
	}
	return r, nil
}

// envelope is how the outbox stores an event (Watermill's forwarder envelope).
type envelope struct {
	DestinationTopic string            `json:"destination_topic"`
	UUID             string            `json:"uuid"`
	Payload          []byte            `json:"payload"`
	Metadata         map[string]string `json:"metadata"`
}

// emitted reads the outbox rows after offset last that the handling of the
// messages ids caused (rows other transactions committed meanwhile are not).
func emitted(ctx context.Context, tx *sql.Tx, last int64, ids map[string]bool) ([]Event, error) {
	rows, err := tx.QueryContext(ctx, emittedQuery, last)
	if err != nil {
		return nil, fmt.Errorf("dry run: outbox: %w", err)
	}
	defer rows.Close()
	evs := []Event{}
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("dry run: outbox: %w", err)
		}
		var e envelope
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("dry run: outbox row: %w", err)
		}
		if !ids[e.Metadata[causation.MetadataCausationID]] {
			continue
		}
		evs = append(evs, Event{ID: e.UUID, Topic: e.DestinationTopic, Type: e.Metadata[events.MetadataType],
			Key: e.Metadata[kafka.MetadataKey], Payload: string(e.Payload)})
	}
	return evs, rows.Err()
}
