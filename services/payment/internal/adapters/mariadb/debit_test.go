package mariadb_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/services/payment/internal/domain"
)

// chargeOf is an Update fn that charges amount in currency for order version 1
// and reports the payment's outcome.
func chargeOf(amount int64, currency string, got *domain.Payment) func(p *domain.Payment, f domain.Funds) ([]events.Event, error) {
	return func(p *domain.Payment, f domain.Funds) ([]events.Event, error) {
		if _, err := p.Charge(1, "alice", amount, currency, f, time.Now().UTC().Truncate(time.Microsecond)); err != nil {
			return nil, err
		}
		*got = *p
		return nil, nil
	}
}

// TestDebitRefusals (integration): the conditional debit (one UPDATE) refuses a
// charge it cannot make, changes no balance, and the reason is read from the
// account afterwards.
func TestDebitRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		customer string
		amount   int64
		currency string
		reason   string
	}{
		{"insufficient funds", "alice", 10001, "EUR", contract.ReasonInsufficientFunds},
		{"other currency", "alice", 100, "USD", contract.ReasonCurrencyMismatch},
		{"unknown customer", "nobody", 100, "EUR", contract.ReasonUnknownCustomer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, dsn := paymentsDB(t)
			id := watermill.NewUUID()
			var got domain.Payment
			fn := func(p *domain.Payment, f domain.Funds) ([]events.Event, error) {
				if _, err := p.Charge(1, tt.customer, tt.amount, tt.currency, f, time.Now().UTC().Truncate(time.Microsecond)); err != nil {
					return nil, err
				}
				got = *p
				return nil, nil
			}
			if err := paymentsRepo(t, dsn, "").Update(context.Background(), id, tt.customer, fn); err != nil {
				t.Fatal(err)
			}
			if got.Status != domain.StatusRefused || got.Reason != tt.reason {
				t.Fatalf("payment %s (%s), want REFUSED (%s)", got.Status, got.Reason, tt.reason)
			}
			if s := readState(t, db, id); s.balance != 10000 || s.ledgerRows != 0 || s.status != "REFUSED" {
				t.Fatalf("after a refused charge: %+v, want alice's 10000 untouched, no ledger row, REFUSED", s)
			}
		})
	}
}

// TestConcurrentDebitsNeverGoNegative (integration): 20 charges of 700 cents
// against alice's 10,000, at once from two pools (two replicas): exactly 14 go
// through, the balance ends at 200, never below zero, and the ledger holds the
// 14 charges.
func TestConcurrentDebitsNeverGoNegative(t *testing.T) {
	t.Parallel()
	db, dsn := paymentsDB(t)
	repos := []interface {
		Update(ctx context.Context, orderID, customerID string, fn func(p *domain.Payment, f domain.Funds) ([]events.Event, error)) error
	}{paymentsRepo(t, dsn, ""), paymentsRepo(t, dsn, "")}
	const n = 20
	outcomes := make([]domain.Payment, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = repos[i%2].Update(context.Background(), watermill.NewUUID(), "alice", chargeOf(700, "EUR", &outcomes[i]))
		})
	}
	wg.Wait()
	charged, refused := 0, 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("charge %d: %v", i, errs[i])
		}
		switch {
		case outcomes[i].Status == domain.StatusCharged:
			charged++
		case outcomes[i].Reason == contract.ReasonInsufficientFunds:
			refused++
		}
	}
	var balance, ledger int64
	if err := db.QueryRow(`SELECT (SELECT balance_cents FROM accounts WHERE customer_id = 'alice'),
		(SELECT COALESCE(SUM(amount_cents), 0) FROM ledger WHERE kind = 'charge')`).Scan(&balance, &ledger); err != nil {
		t.Fatal(err)
	}
	if charged != 14 || refused != 6 || balance != 200 || ledger != 14*700 {
		t.Fatalf("charged %d, refused %d, balance %d, ledger %d; want 14, 6, 200, 9800", charged, refused, balance, ledger)
	}
}
