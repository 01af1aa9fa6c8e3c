package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/inbox"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// TestCommitWakesTheForwarder (integration): a forwarder whose fallback poll is
// 10 minutes forwards a row as soon as the transaction that wrote it commits,
// because the commit wakes it. Speed is not asserted: the forwarder must report
// a wait that a wake ended, and the row must arrive while the fallback cannot
// have fired (the test's own limit, 60 s, is far below 10 min).
func TestCommitWakesTheForwarder(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	ob, err := newOutbox(outbox.Config{PollInterval: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	out := newRecorder()
	f, err := ob.NewForwarder(db, out, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunUntilCleanup(t, f.Forwarder)
	testenv.WaitFor(t, "the forwarder to go idle", time.Minute, func() bool { waits, _ := outbox.WakesForTest(ob.Outbox); return waits > 0 })

	msgs := writeOutbox(t, db, ob, 1)
	testenv.WaitFor(t, "the committed row to be forwarded", time.Minute, func() bool { return out.count(msgs[0].UUID) == 1 })
	if _, woken := outbox.WakesForTest(ob.Outbox); woken < 1 {
		t.Fatalf("the row was forwarded but no wait was ended by a wake (woken=%d)", woken)
	}
}

// TestForwarderCloseDoesNotWaitForTheFallbackPoll (integration): closing an idle
// forwarder whose fallback poll is an hour ends its wait: Close returns without
// hitting the router's close timeout (which would return an error).
func TestForwarderCloseDoesNotWaitForTheFallbackPoll(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	ob, err := newOutbox(outbox.Config{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ob.NewForwarder(db, newRecorder(), watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	<-f.Running()
	testenv.WaitFor(t, "the forwarder to go idle", time.Minute, func() bool { waits, _ := outbox.WakesForTest(ob.Outbox); return waits > 0 })
	if err := f.Close(); err != nil {
		t.Fatalf("Close of an idle forwarder = %v, want nil (its fallback wait must end on close)", err)
	}
	<-done
}

// TestOnlyCommitsWake (integration, database only): which transactions wake the
// outbox's forwarders. A probe stands for a forwarder that is busy (it holds at
// most one pending wake).
func TestOnlyCommitsWake(t *testing.T) {
	t.Parallel()
	refused := errors.New("refused")
	tests := []struct {
		name     string
		write    func(ctx context.Context, db *sql.DB, ob *testOutbox) error
		wantWake int
	}{
		{"sqldb.InTx commits outbox rows", func(ctx context.Context, db *sql.DB, ob *testOutbox) error {
			return sqldb.InTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error {
				return ob.Publish(ctx, tx, "orders", newMsg(1), newMsg(2))
			})
		}, 1},
		{"sqldb.InTx rolls back", func(ctx context.Context, db *sql.DB, ob *testOutbox) error {
			err := sqldb.InTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error {
				if err := ob.Publish(ctx, tx, "orders", newMsg(1)); err != nil {
					return err
				}
				return refused
			})
			if !errors.Is(err, refused) {
				return err
			}
			return nil
		}, 0},
		{"sqldb.InTx commits without outbox rows", func(ctx context.Context, db *sql.DB, _ *testOutbox) error {
			return sqldb.InTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, "SELECT 1")
				return err
			})
		}, 0},
		{"the inbox commits a handler's outbox rows", func(ctx context.Context, db *sql.DB, ob *testOutbox) error {
			in, err := inbox.New(inbox.Config{DB: db, ConsumerGroup: "g"})
			if err != nil {
				return err
			}
			h := in.Middleware(func(m *message.Message) ([]*message.Message, error) {
				tx, _ := sqldb.TxFromContext(m.Context())
				return nil, ob.Publish(m.Context(), tx, "orders", newMsg(1))
			})
			m := newMsg(0)
			m.SetContext(ctx)
			_, err = h(m)
			return err
		}, 1},
		{"the inbox rolls a failing handler back", func(ctx context.Context, db *sql.DB, ob *testOutbox) error {
			in, err := inbox.New(inbox.Config{DB: db, ConsumerGroup: "g"})
			if err != nil {
				return err
			}
			h := in.Middleware(func(m *message.Message) ([]*message.Message, error) {
				tx, _ := sqldb.TxFromContext(m.Context())
				if err := ob.Publish(m.Context(), tx, "orders", newMsg(1)); err != nil {
					return nil, err
				}
				return nil, refused
			})
			m := newMsg(0)
			m.SetContext(ctx)
			if _, err := h(m); !errors.Is(err, refused) {
				return err
			}
			return nil
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := migrated(t)
			ob, err := newOutbox(outbox.Config{})
			if err != nil {
				t.Fatal(err)
			}
			pending := outbox.WakeProbeForTest(ob.Outbox)
			if err := tt.write(context.Background(), db, ob); err != nil {
				t.Fatal(err)
			}
			if got := pending(); got != tt.wantWake {
				t.Fatalf("pending wakes after the write: %d, want %d", got, tt.wantWake)
			}
		})
	}
}
