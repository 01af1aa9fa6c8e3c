package poison

import (
	"fmt"
	"math"
	"testing"

	"github.com/IBM/sarama"
)

func ptr(n int64) *int64 { return &n }

// TestScanRange: the offsets a page reads, in a topic that holds offsets 100
// up to 200 (100 purged before them).
func TestScanRange(t *testing.T) {
	t.Parallel()
	const oldest, newest = 100, 200
	tests := []struct {
		name     string
		q        Query
		from, to int64
		ok       bool
	}{
		{"newest first, no cursor", Query{Limit: 10}, 190, 200, true},
		{"newest first from a cursor", Query{Limit: 10, Cursor: ptr(149)}, 140, 150, true},
		{"newest first near the start", Query{Limit: 10, Cursor: ptr(104)}, 100, 105, true},
		{"newest first from a cursor past the end", Query{Limit: 10, Cursor: ptr(500)}, 190, 200, true},
		{"newest first from a purged cursor: nothing older is left", Query{Limit: 10, Cursor: ptr(99)}, 0, 0, false},
		{"oldest first, no cursor", Query{Limit: 10, Order: OldestFirst}, 100, 110, true},
		{"oldest first from a cursor", Query{Limit: 10, Order: OldestFirst, Cursor: ptr(150)}, 150, 160, true},
		{"oldest first from a purged cursor starts at the oldest left", Query{Limit: 10, Order: OldestFirst, Cursor: ptr(3)}, 100, 110, true},
		{"oldest first near the end", Query{Limit: 10, Order: OldestFirst, Cursor: ptr(195)}, 195, 200, true},
		{"oldest first from the end", Query{Limit: 10, Order: OldestFirst, Cursor: ptr(200)}, 0, 0, false},
		{"newest first from the largest cursor", Query{Limit: 10, Cursor: ptr(math.MaxInt64)}, 190, 200, true},
		{"oldest first from the largest cursor", Query{Limit: 10, Order: OldestFirst, Cursor: ptr(math.MaxInt64)}, 0, 0, false},
		{"a filter reads up to MaxScan", Query{Limit: 10, ReasonCode: "unknown_order"}, 100, 200, true},
		{"unreplayed only reads up to MaxScan", Query{Limit: 10, Order: OldestFirst, notReplayed: true}, 100, 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to, ok := scanRange(tt.q.normalized(), oldest, newest)
			if ok != tt.ok || (ok && (from != tt.from || to != tt.to)) {
				t.Fatalf("scanRange = [%d, %d) %v, want [%d, %d) %v", from, to, ok, tt.from, tt.to, tt.ok)
			}
		})
	}
	if from, to, ok := scanRange(Query{ReasonCode: "x"}.normalized(), 0, 3*MaxScan); !ok || to-from != MaxScan {
		t.Fatalf("a filtered page of a large topic reads [%d, %d), want MaxScan records", from, to)
	}
	if from, to, ok := scanRange(Query{}.normalized(), 5, 5); ok {
		t.Fatalf("an empty topic: [%d, %d) %v, want nothing", from, to, ok)
	}
}

func TestNormalized(t *testing.T) {
	t.Parallel()
	tests := []struct {
		q, want Query
	}{
		{Query{}, Query{Limit: DefaultLimit, Order: NewestFirst}},
		{Query{Limit: MaxLimit + 1, Order: OldestFirst}, Query{Limit: MaxLimit, Order: OldestFirst}},
		{Query{Limit: 7, Order: "sideways"}, Query{Limit: 7, Order: NewestFirst}},
	}
	for _, tt := range tests {
		if got := tt.q.normalized(); got.Limit != tt.want.Limit || got.Order != tt.want.Order {
			t.Errorf("%+v.normalized() = %+v, want %+v", tt.q, got, tt.want)
		}
	}
}

// TestCursor: a page's next cursor, in a topic of offsets 100 up to 200.
func TestCursor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		next int64
		want *int64
	}{
		{150, ptr(150)},
		{100, ptr(100)},
		{199, ptr(199)},
		{99, nil},  // newest first, past the oldest
		{200, nil}, // oldest first, past the newest
	}
	for _, tt := range tests {
		got := cursor(tt.next, 100, 200)
		if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
			t.Errorf("cursor(%d) = %v, want %v", tt.next, got, tt.want)
		}
	}
}

// TestNewestMatches: a newest-first page keeps the newest matches of the
// range it reads forward, and says whether older ones were left.
func TestNewestMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		limit, added int
		want         string
		dropped      bool
	}{
		{3, 0, "[]", false},
		{3, 2, "[1 0]", false},
		{3, 3, "[2 1 0]", false},
		{3, 4, "[3 2 1]", true},
		{3, 7, "[6 5 4]", true},
		{1, 5, "[4]", true},
	}
	for _, tt := range tests {
		m := newestMatches{limit: tt.limit}
		for i := range tt.added {
			m.add(&sarama.ConsumerMessage{Offset: int64(i)})
		}
		kept, dropped := m.newestFirst()
		offsets := make([]int64, len(kept))
		for i, km := range kept {
			offsets[i] = km.Offset
		}
		if got := fmt.Sprint(offsets); got != tt.want || dropped != tt.dropped {
			t.Errorf("limit %d, %d added: kept %s (dropped %v), want %s (%v)", tt.limit, tt.added, got, dropped, tt.want, tt.dropped)
		}
	}
}
