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
// the event read from the outbox, the state before and after) and leaves
// nothing behind: no row, no outbox row, no commit hook run.
func TestRunChangesNothing(t *testing.T) {
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	if _, err := d.Admin.Exec("CREATE TABLE things (n INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	db := d.Admin
	ob := outbox.New()
	committed := false
	handler := func(fail error) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
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
				return fail
			})
		}
	}
	count := func(ctx context.Context, tx *sql.Tx) (any, error) {
		var n int
		err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM things").Scan(&n)
		return n, err
	}
	cases := []struct {
		name        string
		fail        error
		wantSucceed bool
		wantReason  string
	}{
		{"would succeed", nil, true, ""},
		{"would fail", failure.PermanentCode("injected_fault", errors.New("no")), false, "injected_fault"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := message.NewMessage(watermill.NewUUID(), []byte("{}"))
			r, err := dryrun.Run(context.Background(), db, handler(c.fail), msg, count)
			if err != nil {
				t.Fatal(err)
			}
			if r.WouldSucceed != c.wantSucceed || r.ReasonCode != c.wantReason {
				t.Errorf("would succeed %v (reason %q), want %v (%q)", r.WouldSucceed, r.ReasonCode, c.wantSucceed, c.wantReason)
			}
			if r.Before != 0 || r.After != 1 {
				t.Errorf("state before %v after %v, want 0 and 1", r.Before, r.After)
			}
			if len(r.Events) != 1 || r.Events[0].Topic != "payments" || r.Events[0].Type != "payment.completed" ||
				r.Events[0].Key != "o-1" || r.Events[0].Payload != `{"ok":true}` {
				t.Errorf("events %+v, want the one payment.completed", r.Events)
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
