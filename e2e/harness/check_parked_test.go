package harness

import (
	"strings"
	"testing"

	"github.com/onceflow/onceflow/pkg/events"
)

// I9: parked events are accounted for (not lost) and allowed only for crafted
// orders in their defined end state.
func TestCheckerAccountsForParkedEvents(t *testing.T) {
	t.Parallel()
	cancelled := OrderRow{Status: "CANCELLED", CancelReason: "payment_timeout", Amount: 500}
	placed, cancelledEvt := string(events.TypeOrderPlaced), string(events.TypeOrderCancelled)
	tests := []struct {
		name    string
		orders  map[string]OrderRow
		parked  []ParkedEvent
		crafted map[string]bool
		wantI9  []string // substrings of the expected I9 violations
		lost    int
	}{
		{"crafted order in its defined state", map[string]OrderRow{"c1": cancelled},
			[]ParkedEvent{{"e1", "c1", placed, "message_too_large"}, {"e2", "c1", cancelledEvt, "behind_parked"}},
			map[string]bool{"c1": true}, nil, 0},
		{"a non-crafted order parked", map[string]OrderRow{"o1": cancelled},
			[]ParkedEvent{{"e1", "o1", placed, "message_too_large"}},
			nil, []string{"order o1, which the scenario did not craft"}, 0},
		{"crafted order not parked and confirmed", map[string]OrderRow{"c1": {Status: "CONFIRMED", Amount: 500}},
			nil, map[string]bool{"c1": true},
			[]string{"crafted order c1 is CONFIRMED", "crafted order c1 has parked events"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Evaluate(&History{}, &Snapshot{Orders: tt.orders, Parked: tt.parked}, CheckConfig{Crafted: tt.crafted})
			var i9 []string
			for _, v := range r.Violations {
				if strings.HasPrefix(v, "I9") {
					i9 = append(i9, v)
				}
			}
			if len(i9) != len(tt.wantI9) {
				t.Fatalf("I9 violations %q, want %d", i9, len(tt.wantI9))
			}
			for i, want := range tt.wantI9 {
				if !strings.Contains(i9[i], want) {
					t.Errorf("violation %q does not say %q", i9[i], want)
				}
			}
			if r.LostEvents != tt.lost || r.Parked != len(tt.parked) {
				t.Errorf("lost_events=%d parked=%d, want %d and %d (%v)", r.LostEvents, r.Parked, tt.lost, len(tt.parked), r.Violations)
			}
		})
	}
}
