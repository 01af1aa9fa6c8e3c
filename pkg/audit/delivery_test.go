package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/audit"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// offsets is Kafka as the delivery check sees it: one partition.
type offsets struct{ hw, committed int64 }

func (o *offsets) HighWatermarks(string) (map[int32]int64, error) {
	return map[int32]int64{0: o.hw}, nil
}
func (o *offsets) Committed(string, string) (map[int32]int64, error) {
	return map[int32]int64{0: o.committed}, nil
}

// TestDeliveryCheck: an event is judged lost only on evidence: its outbox
// row is gone (not waiting, not parked), the reader never recorded it, and
// the reader has committed past every offset Kafka had when the row was
// seen gone. A waiting row, a parked row, an event the reader recorded and
// a reader behind are never violations.
func TestDeliveryCheck(t *testing.T) {
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	db := d.Open(t, 4)
	ob := outbox.New(outbox.WithReceipts(audit.WriteReceipts))
	write := func(key string) string {
		t.Helper()
		m := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
		m.Metadata.Set(kafka.MetadataKey, key)
		if err := sqldb.InTx(context.Background(), db, func(ctx context.Context, tx *sql.Tx) error {
			return ob.Publish(ctx, tx, "orders", m)
		}); err != nil {
			t.Fatal(err)
		}
		return m.UUID
	}
	relay := func(ids ...string) { // the relay sent and deleted these rows
		t.Helper()
		for _, id := range ids {
			if _, err := db.Exec("DELETE FROM watermill_outbox WHERE event_uuid = ?", id); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := map[string]bool{}
	kafkaSide := &offsets{hw: 10, committed: 10}
	check, err := audit.DeliveryCheck(audit.DeliveryConfig{DB: db, Topic: "orders", OutboxTable: outbox.Table, Reader: "timeline",
		Kafka: kafkaSide, Settle: 100 * time.Millisecond,
		Seen: func(_ context.Context, rs []audit.Receipt) (map[string]bool, error) {
			out := map[string]bool{}
			for _, r := range rs {
				out[r.EventID] = seen[r.EventID]
			}
			return out, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	var cursor int64
	// pass runs the check once; pending says it must wait to judge.
	pass := func(name string, pending bool, wantLost ...string) {
		t.Helper()
		found, next, err := check.Run(context.Background(), cursor)
		if err != nil && (!pending || !errors.Is(err, audit.ErrPending)) {
			t.Fatalf("%s: %v, want pending %v", name, err, pending)
		}
		if pending && err == nil {
			t.Fatalf("%s: judged, want it to wait (ErrPending)", name)
		}
		cursor = max(cursor, next)
		var lost []string
		for _, v := range found {
			lost = append(lost, v.Subject)
		}
		if len(lost) != len(wantLost) || (len(lost) > 0 && lost[0] != wantLost[0]) {
			t.Fatalf("%s: lost %v, want %v", name, lost, wantLost)
		}
	}

	delivered, waiting := write("k-1"), write("k-2")
	seen[delivered] = true
	time.Sleep(1200 * time.Millisecond) // older than settle, and than the outbox's whole seconds
	relay(delivered)
	pass("the second row still waits: nothing judged", false)
	pass("it still waits, the reader at Kafka's end: nothing judged", false)
	relay(waiting)
	seen[waiting] = true
	pass("both relayed and read back", false)

	parked, lost := write("k-3"), write("k-4")
	if _, err := db.Exec(`INSERT INTO outbox_parked (message_id, partition_key, topic, payload, metadata, reason, kafka_error)
		VALUES (?, 'k-3', 'orders', '{}', '{}', 'message_too_large', 'too large')`, parked); err != nil {
		t.Fatal(err)
	}
	relay(parked, lost)
	time.Sleep(200 * time.Millisecond)
	kafkaSide.hw, kafkaSide.committed = 12, 11 // the reader is one message behind
	pass("gone, unseen, the reader behind: waits", true)
	pass("the reader still behind: waits", true)
	kafkaSide.committed = 12
	pass("the reader passed the offsets: the unseen row is lost", false, lost)
	pass("judged once", false)
}
