package app_test

import (
	"context"
	"testing"

	"github.com/onceflow/onceflow/pkg/events"
)

// TestEventVersions: the service writes the schema version its configuration
// names for a type, and leaves the others to the codec's default write version
// (SchemaVersion 0), for OrderPlaced and for the OrderCancelled that follows.
func TestEventVersions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                     string
		versions                 events.Versions
		wantPlaced, wantCanceled int
	}{
		{"none configured", nil, 0, 0},
		{"order.placed v2", events.Versions{events.TypeOrderPlaced: 2}, 2, 0},
		{"order.placed v1 named", events.Versions{events.TypeOrderPlaced: 1, events.TypeOrderCancelled: 1}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc, orders, _ := newService(t)
			svc.EventVersions = tt.versions
			o := placeOrder(t, svc)
			if _, err := svc.CancelOrder(context.Background(), o.ID, "req-2", nil); err != nil {
				t.Fatal(err)
			}
			if len(orders.outbox) != 2 {
				t.Fatalf("outbox holds %d events, want 2", len(orders.outbox))
			}
			if got := orders.outbox[0].SchemaVersion; got != tt.wantPlaced {
				t.Errorf("OrderPlaced SchemaVersion = %d, want %d", got, tt.wantPlaced)
			}
			if got := orders.outbox[1].SchemaVersion; got != tt.wantCanceled {
				t.Errorf("OrderCancelled SchemaVersion = %d, want %d", got, tt.wantCanceled)
			}
		})
	}
}
