package e2e

import (
	"testing"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/pkg/events"
)

// TestOrderPlacedV2 is the last step of ADR 0036's rollout: with every
// consumer able to read order.placed v2, the order service is switched to
// write it (ORDER_EVENT_VERSIONS=order.placed:2). The saga runs as before: the
// order is charged once and confirmed, and the event on the topic is v2. (The
// step before it, a v1-only consumer given v2, is
// services/payment/internal/service's TestOrderPlacedV2RolledOutTheWrongWayRound.)
func TestOrderPlacedV2(t *testing.T) {
	s := newStack(t, harness.StackConfig{OrderEnv: []string{"ORDER_EVENT_VERSIONS=order.placed:2"}},
		harness.Account{CustomerID: "rich", BalanceCents: 100_000, Currency: "EUR"})
	id := place(t, s, "rich", 1250, "EUR").ID
	if o := terminal(t, s, id)[id]; o.Status != "CONFIRMED" {
		t.Fatalf("order is %s (%q), want CONFIRMED", o.Status, o.CancelReason)
	}
	if charges, cents := ledger(t, s, id); charges != 1 || cents != 1250 {
		t.Fatalf("%d charge(s) of %d cents in all, want 1 of 1250", charges, cents)
	}
	e, err := events.Decode(orderPlacedMessage(t, s, id))
	if err != nil {
		t.Fatal(err)
	}
	if want := (events.OrderPlaced{CustomerID: "rich", Amount: events.Money{MinorUnits: 1250, Currency: "EUR"}}); e.SchemaVersion != 2 || e.Payload != want {
		t.Fatalf("OrderPlaced on the topic: schema version %d, %+v; want version 2, %+v", e.SchemaVersion, e.Payload, want)
	}
}
