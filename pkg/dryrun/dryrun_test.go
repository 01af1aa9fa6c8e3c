package dryrun_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/causation"
	"github.com/onceflow/onceflow/pkg/dryrun"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// TestRunChangesNothing: a handler that changes a row and emits an event, or
// fails after doing so, is reported as it would run (success or reason code,
// the event read from the outbox, the state before and after; a failed
// handling's writes left out) and leaves nothing behind: no row, no outbox
// row, no commit hook run. A queue runs in order, each message seeing the
// ones before it, and stops at the first failure.
func TestRunChangesNothing(t *testing.T) {
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	if _, err := d.Admin.Exec("CREATE TABLE things (n INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	db := d.Admin
	ob := outbox.New()
	committed := false
	injected := failure.PermanentCode("injected_fault", errors.New("no"))
	// handler fails, after its writes, on a message with metadata "fail".
	handler := func(msg *message.Message) ([]*message.Message, error) {
		return nil, sqldb.InTx(msg.Context(), db, func(ctx context.Context, tx *sql.Tx) error {
			sqldb.OnCommit(ctx, &committed, func() { committed = true })
			if _, err := tx.ExecContext(ctx, "INSERT INTO things (n) VALUES (1)"); err != nil {
				return err
			}
			ev := message.NewMessage(watermill.NewUUID(), []byte(`{"ok":true}`))
			ev.Metadata.Set(kafka.MetadataKey, "o-1")
			ev.Metadata.Set(events.MetadataType, "payment.completed")
			// The handler runs for msg, as the inbox makes it do.
			ctx = causation.WithCause(ctx, msg.UUID, 1)
			if err := ob.Publish(ctx, tx, "payments", ev); err != nil {
				return err
			}
			if msg.Metadata.Get("fail") != "" {
				return injected
			}
			return nil
		})
	}
	count := func(ctx context.Context, tx *sql.Tx) (any, error) {
		var n int
		err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM things").Scan(&n)
		return n, err
	}
	cases := []struct {
		name string
		// fails says, for each message of the queue, whether it fails.
		fails       []bool
		wantSucceed bool
		wantReason  string
		wantRan     int
		// wantFailed is the index of the message reported failed, or -1.
		wantFailed int
		// wantAfter is the state after, which is also the number of events.
		wantAfter int
	}{
		{"one that would succeed", []bool{false}, true, "", 1, -1, 1},
		{"one that would fail", []bool{true}, false, "injected_fault", 1, 0, 0},
		{"a queue that would succeed", []bool{false, false, false}, true, "", 3, -1, 3},
		{"a queue that stops at its second", []bool{false, true, false}, false, "injected_fault", 2, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var msgs []*message.Message
			for _, fail := range c.fails {
				msg := message.NewMessage(watermill.NewUUID(), []byte("{}"))
				if fail {
					msg.Metadata.Set("fail", "1")
				}
				msgs = append(msgs, msg)
			}
			var r dryrun.Result
			var err error
			if len(msgs) == 1 {
				r, err = dryrun.Run(context.Background(), db, handler, msgs[0], count)
			} else {
				r, err = dryrun.RunQueue(context.Background(), db, handler, msgs, count)
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.WouldSucceed != c.wantSucceed || r.ReasonCode != c.wantReason || r.Ran != c.wantRan {
				t.Errorf("would succeed %v (reason %q) after %d, want %v (%q) after %d", r.WouldSucceed, r.ReasonCode, r.Ran,
					c.wantSucceed, c.wantReason, c.wantRan)
			}
			wantFailed := ""
			if c.wantFailed >= 0 {
				wantFailed = msgs[c.wantFailed].UUID
			}
			if r.FailedMessageID != wantFailed {
				t.Errorf("failed message %q, want %q", r.FailedMessageID, wantFailed)
			}
			if r.Before != 0 || r.After != c.wantAfter {
				t.Errorf("state before %v after %v, want 0 and %d", r.Before, r.After, c.wantAfter)
			}
			if len(r.Events) != c.wantAfter {
				t.Fatalf("%d events, want %d: %+v", len(r.Events), c.wantAfter, r.Events)
			}
			for _, ev := range r.Events {
				if ev.Topic != "payments" || ev.Type != "payment.completed" || ev.Key != "o-1" || ev.Payload != `{"ok":true}` {
					t.Errorf("event %+v, want a payment.completed", ev)
				}
			}
			var things, rows int
			if err := db.QueryRow("SELECT (SELECT COUNT(*) FROM things), (SELECT COUNT(*) FROM watermill_outbox)").Scan(&things, &rows); err != nil {
				t.Fatal(err)
			}
			if things != 0 || rows != 0 || committed {
				t.Errorf("after the dry run: %d rows, %d outbox rows, commit hook run %v; want nothing", things, rows, committed)
			}
		})
	}
}
