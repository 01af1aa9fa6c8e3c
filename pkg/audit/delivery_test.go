package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
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

// reader is the reader's record: the events in seen.
func reader(seen map[string]bool) func(context.Context, []audit.Receipt) (map[string]bool, error) {
	return func(_ context.Context, rs []audit.Receipt) (map[string]bool, error) {
		out := map[string]bool{}
		for _, r := range rs {
			out[r.EventID] = seen[r.EventID]
		}
		return out, nil
	}
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
		Seen: reader(seen)})
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

// TestDeliveryCheckKeptRows: with a relay that keeps its rows behind an
// acknowledged offset (watermill-sql's default offsets adapter), a row
// above that offset waits, and a row committed below it, never sent, is
// lost.
func TestDeliveryCheckKeptRows(t *testing.T) {
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	db := d.Admin // the tables below are the test's own: no service user has them
	for _, q := range []string{
		"CREATE TABLE kept_rows (`offset` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, uuid VARCHAR(36) NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, payload JSON, metadata JSON)",
		"CREATE TABLE kept_offsets (consumer_group VARCHAR(255) NOT NULL PRIMARY KEY, offset_acked BIGINT, offset_consumed BIGINT NOT NULL)",
		"INSERT INTO kept_offsets VALUES ('', 0, 0)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	// write commits one event's row (at offset, or the next one if 0), in
	// the forwarder's envelope, and its receipt.
	write := func(offset int64) string {
		t.Helper()
		m := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
		m.Metadata.Set(kafka.MetadataKey, "k-"+m.UUID)
		if err := sqldb.InTx(context.Background(), db, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO kept_rows (`offset`, uuid, payload, metadata) VALUES (NULLIF(?, 0), UUID(), JSON_OBJECT('uuid', ?), '{}')",
				offset, m.UUID); err != nil {
				return err
			}
			return audit.WriteReceipts(ctx, wsql.TxFromStdSQL(tx), "orders", []*message.Message{m})
		}); err != nil {
			t.Fatal(err)
		}
		return m.UUID
	}
	ack := func(offset int64) {
		t.Helper()
		if _, err := db.Exec("UPDATE kept_offsets SET offset_acked = ?", offset); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	check, err := audit.DeliveryCheck(audit.DeliveryConfig{DB: db, Topic: "orders", OutboxTable: "kept_rows", AckedOffsets: "kept_offsets",
		Reader: "timeline", Kafka: &offsets{hw: 10, committed: 10}, Settle: 100 * time.Millisecond,
		Seen: reader(seen)})
	if err != nil {
		t.Fatal(err)
	}
	var cursor int64
	run := func() (lost []string, err error) {
		found, next, err := check.Run(context.Background(), cursor)
		cursor = max(cursor, next)
		for _, v := range found {
			lost = append(lost, v.Subject)
		}
		return lost, err
	}

	sent := write(0)
	seen[sent] = true
	unsent := write(0) // above the acknowledged offset: it waits
	time.Sleep(200 * time.Millisecond)
	ack(1)
	if lost, err := run(); err != nil || lost != nil {
		t.Fatalf("one row sent, one waiting: lost %v, err %v; want none", lost, err)
	}
	late := write(-5) // committed below the acknowledged offset: never sent
	time.Sleep(200 * time.Millisecond)
	seen[unsent] = true
	ack(2)
	if lost, err := run(); !errors.Is(err, audit.ErrPending) || lost != nil {
		t.Fatalf("a row below the acknowledged offset, unseen: lost %v, err %v; want it held for the reader", lost, err)
	}
	if lost, err := run(); err != nil || len(lost) != 1 || lost[0] != late {
		t.Fatalf("the reader passed Kafka's end: lost %v, err %v; want [%s]", lost, err, late)
	}
}
