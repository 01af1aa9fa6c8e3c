package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
)

// TestCheckerSeesLostPaymentEvents: the checker must count a payment decision
// whose event never reached Kafka as a lost event, even when no order is left
// behind (a payment timeout would otherwise hide the loss). The test
// records decisions in the payment database that no event announces: a charge,
// a refusal and a refund.
func TestCheckerSeesLostPaymentEvents(t *testing.T) {
	s := newStack(t, harness.StackConfig{})
	money, err := s.TotalMoney()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		order, status     string
		charged, refunded int64
		want              string
	}{
		{"ghost-charged", "CHARGED", 100, 0, "payment.completed of order ghost-charged"},
		{"ghost-refused", "REFUSED", 0, 0, "payment.failed of order ghost-refused"},
		{"ghost-refunded", "REFUNDED", 100, 100, "payment.refunded of order ghost-refunded"},
	}
	for _, tt := range tests {
		if _, err := s.PaymentDB.Exec(`INSERT INTO payments (order_id, customer_id, amount_cents, currency, status,
			order_version, charged_cents, refunded_cents, created_at, updated_at)
			VALUES (?, 'nobody', 100, 'EUR', ?, 1, ?, ?, NOW(6), NOW(6))`, tt.order, tt.status, tt.charged, tt.refunded); err != nil {
			t.Fatal(err)
		}
	}
	r := s.Check(&harness.History{}, harness.CheckConfig{InitialMoney: money, RecoveryWindow: 5 * time.Second})
	// ghost-refunded lacks both its PaymentCompleted and its PaymentRefunded.
	if r.LostEvents != 4 {
		t.Errorf("lost_events = %d, want 4 (violations: %v)", r.LostEvents, r.Violations)
	}
	for _, tt := range tests {
		found := false
		for _, v := range r.Violations {
			found = found || strings.Contains(v, tt.want)
		}
		if !found {
			t.Errorf("no violation names the %s", tt.want)
		}
	}
}
