package domain_test

import (
	"testing"
	"time"

	"github.com/onceflow/onceflow/services/payment/internal/domain"
)

func TestPlaceChargesOrRefuses(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		acct        *domain.Account
		amount      int64
		wantCharged bool
		wantReason  string
		wantBalance int64
	}{
		{"enough money", &domain.Account{CustomerID: "c", BalanceCents: 1000, Currency: "EUR"}, 400, true, "", 600},
		{"exactly enough", &domain.Account{CustomerID: "c", BalanceCents: 400, Currency: "EUR"}, 400, true, "", 0},
		{"one cent short", &domain.Account{CustomerID: "c", BalanceCents: 399, Currency: "EUR"}, 400, false, domain.ReasonInsufficientFunds, 399},
		{"other currency", &domain.Account{CustomerID: "c", BalanceCents: 1000, Currency: "USD"}, 400, false, domain.ReasonCurrencyMismatch, 1000},
		{"no account", nil, 400, false, domain.ReasonUnknownCustomer, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := domain.NewPayment("o-1")
			if !p.IsNewer(1) {
				t.Fatal("an empty payment must accept version 1")
			}
			charged := p.Place(1, "c", tt.amount, "EUR", tt.acct, now)
			if charged != tt.wantCharged || p.Reason != tt.wantReason {
				t.Fatalf("Place = %v (reason %q), want %v (%q)", charged, p.Reason, tt.wantCharged, tt.wantReason)
			}
			if tt.acct != nil && tt.acct.BalanceCents != tt.wantBalance {
				t.Fatalf("balance = %d, want %d", tt.acct.BalanceCents, tt.wantBalance)
			}
			wantMoves := 0
			if charged {
				wantMoves = 1
			}
			if len(p.Movements()) != wantMoves {
				t.Fatalf("movements = %v, want %d", p.Movements(), wantMoves)
			}
			if p.IsNewer(1) || !p.IsNewer(2) {
				t.Fatal("after acting on version 1, version 1 must be stale and version 2 newer")
			}
		})
	}
}
