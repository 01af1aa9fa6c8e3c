package harness

import (
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/events"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func rec(uuid, order string, version int, partition int32, offset int64) Record {
	return Record{Partition: partition, Offset: offset, UUID: uuid, Decoded: true,
		Event: events.Event{ID: uuid, OrderID: order, OrderVersion: version}}
}

// TestCompareStrategyEvents: each definition of ADR 37 on a made-up store.
// Partition 0 is committed up to offset 100, partition 1 up to 5.
func TestCompareStrategyEvents(t *testing.T) {
	t.Parallel()
	c := Compared{
		Orders: []Record{
			rec("a1", "A", 1, 0, 1), rec("a2", "A", 2, 0, 2), rec("a1-copy", "A", 1, 0, 3), // in order; a copy
			rec("b1", "B", 1, 0, 4), rec("b2", "B", 2, 0, 5), // v1 poisoned, v2 processed
			rec("c1", "C", 1, 0, 6), rec("c2", "C", 2, 0, 7), // v1 skipped (lost), v2 processed
			rec("d1", "D", 1, 1, 9),                           // behind the committed offset: pending
			rec("e1", "E", 1, 0, 8), rec("e2", "E", 2, 0, 10), // both parked
			rec("f1", "F", 1, 0, 11), rec("f2", "F", 2, 0, 12), // v1 requeued, processed after v2
			rec("g1", "G", 1, 0, 13),                 // requeued, still held
			rec("x1", "x-1", 1, 0, 14),               // injected garbage that decodes
			{Partition: 0, Offset: 15, UUID: "junk"}, // injected garbage that does not
		},
		Injected:  map[string]bool{"x1": true, "junk": true},
		Committed: map[int32]int64{0: 100, 1: 5},
		Processed: map[string]time.Time{"a1-copy": at(1), "a2": at(2), "b2": at(3), "c2": at(4), "f2": at(5), "f1": at(9)},
		Poison:    []string{"b1", "junk", "x1"},
		Held:      map[string]string{"e1": "parked", "e2": "parked", "g1": "requeued"},
		Healthy:   func(string) bool { return true },
	}
	var row StrategyRow
	CompareStrategy(&row, c)
	tests := []struct {
		name      string
		got, want int
	}{
		{"events (each once, garbage left out)", row.Events, 12},
		{"processed", row.Processed, 6},
		{"lost (C's v1 only)", row.Lost, 1},
		{"pending (D)", row.Pending, 1},
		{"out-of-order keys (B, C, F)", row.OutOfOrderKeys, 3},
		{"poisoned messages", row.Poisoned, 3},
		{"poisoned events", row.PoisonedEvents, 1},
		{"parked", row.Parked, 2},
		{"requeued", row.Requeued, 1},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

// TestCompareStrategyOrders: p99 of healthy POST→terminal, null when too many
// never end; recovery only when every healthy order accepted before the
// repair ended by the saga, not by the payment timeout.
func TestCompareStrategyOrders(t *testing.T) {
	t.Parallel()
	healthy := func(c string) bool { return !strings.HasPrefix(c, "cursed-") }
	accepted := func(id, customer string, sent float64) Request {
		return Request{OrderID: id, CustomerID: customer, SentAt: at(sent), Outcome: Accepted}
	}
	done := func(status, reason string, updated float64) OrderRow {
		return OrderRow{Status: status, CancelReason: reason, UpdatedAt: at(updated)}
	}
	tests := []struct {
		name         string
		rows         map[string]OrderRow
		wantP99      int64 // -1: null
		wantRecovery float64
		wantTimedOut int
	}{
		{"all paid after the repair at 10 s",
			map[string]OrderRow{"1": done("CONFIRMED", "", 12), "2": done("CANCELLED", "payment_failed", 13.5), "3": done("CONFIRMED", "", 20.2)},
			10000, 3.5, 0},
		{"a healthy order accepted before the repair timed out",
			map[string]OrderRow{"1": done("CANCELLED", "payment_timeout", 40), "2": done("CONFIRMED", "", 13.5), "3": done("CONFIRMED", "", 20.2)},
			38000, -1, 1},
		{"a healthy order never ended",
			map[string]OrderRow{"1": {Status: "PENDING"}, "2": done("CONFIRMED", "", 13.5), "3": done("CONFIRMED", "", 20.2)},
			-1, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rows := map[string]OrderRow{"cursed": done("CANCELLED", "payment_timeout", 99)}
			for id, r := range tt.rows {
				rows[id] = r
			}
			var row StrategyRow
			CompareStrategy(&row, Compared{Rows: rows, Healthy: healthy, Repaired: at(10), Requests: []Request{
				accepted("1", "rich-1", 2), accepted("2", "rich-2", 5), accepted("3", "rich-3", 12), accepted("cursed", "cursed-1", 1),
				{OrderID: "", CustomerID: "rich-4", Outcome: Rejected},
			}})
			if got := nullable(row.HealthyP99Ms); got != tt.wantP99 {
				t.Errorf("healthy p99 = %d ms, want %d", got, tt.wantP99)
			}
			if got := nullableF(row.RecoveryS); got != tt.wantRecovery {
				t.Errorf("recovery = %v s, want %v", got, tt.wantRecovery)
			}
			if row.Accepted != 4 || row.HealthyTimedOut != tt.wantTimedOut {
				t.Errorf("accepted %d, healthy timed out %d; want 4 and %d", row.Accepted, row.HealthyTimedOut, tt.wantTimedOut)
			}
		})
	}
}

func nullable(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

func nullableF(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}
