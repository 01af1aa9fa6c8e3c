//go:build faults

package outbox_test

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// TestLateOffsetRowByRelay (fault build only) makes a row visible below every
// offset the outbox handed out (Faults.LateOffsetEvery: the out-of-order
// commits of ADR 3) after the relay forwarded a later one. onceflow's relay
// selects unacknowledged rows whatever their offset and forwards it; the stock
// Watermill relay (Faults.StockRelay) reads above its watermark and never does:
// the negative control, every run.
func TestLateOffsetRowByRelay(t *testing.T) {
	tests := []struct {
		name        string
		stock       bool
		wantForward int
	}{
		{"onceflow's relay", false, 1},
		{"stock Watermill relay (negative control)", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := migrated(t)
			if err := sqldb.Migrate(context.Background(), db, slog.New(slog.DiscardHandler), outbox.StockMigrations); err != nil {
				t.Fatal(err)
			}
			ob, err := newOutbox(outbox.Config{PollInterval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ob.opts = append(ob.opts, outbox.WithFaults(outbox.Faults{StockRelay: tt.stock, LateOffsetEvery: 1, LateOffsetEventType: "Late"},
				slog.New(slog.DiscardHandler)))
			out := newRecorder()
			f, err := ob.NewForwarder(db, out, watermill.NopLogger{})
			if err != nil {
				t.Fatal(err)
			}
			testenv.RunUntilCleanup(t, f.Forwarder)
			first, late, marker := newMsg(1), newMsg(2), newMsg(3)
			late.Metadata.Set(kafka.MetadataEventType, "Late")
			commit := func(msgs ...*message.Message) {
				t.Helper()
				for _, m := range msgs {
					if err := sqldb.InTx(context.Background(), db, func(ctx context.Context, tx *sql.Tx) error {
						return ob.Publish(ctx, tx, "orders", m)
					}); err != nil {
						t.Fatal(err)
					}
				}
			}
			commit(first)
			testenv.WaitFor(t, "the first row to be forwarded", 30*time.Second, func() bool { return out.count(first.UUID) == 1 })
			commit(late, marker)
			testenv.WaitFor(t, "the marker to be forwarded", 30*time.Second, func() bool { return out.count(marker.UUID) == 1 })
			time.Sleep(200 * time.Millisecond) // a poll more for a late row a relay selects after the marker
			if got := out.count(late.UUID); got != tt.wantForward {
				t.Fatalf("the row written below every offset was forwarded %d times, want %d", got, tt.wantForward)
			}
		})
	}
}
