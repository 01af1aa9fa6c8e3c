package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

var now = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func TestNewOrderValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		customer   string
		amount     int64
		currency   string
		wantFields []string
	}{
		{"valid", "c-1", 1250, "EUR", nil},
		{"largest amount", "c-1", contract.MaxAmountCents, "EUR", nil},
		{"empty customer", "", 1250, "EUR", []string{"customer_id"}},
		{"customer with space", "c 1", 1250, "EUR", []string{"customer_id"}},
		{"zero amount", "c-1", 0, "EUR", []string{"amount_cents"}},
		{"too large", "c-1", contract.MaxAmountCents + 1, "EUR", []string{"amount_cents"}},
		{"lower-case currency", "c-1", 1, "eur", []string{"currency"}},
		{"everything wrong", "", -1, "", []string{"customer_id", "amount_cents", "currency"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := domain.NewOrder("o-1", tt.customer, tt.amount, tt.currency, now)
			if tt.wantFields == nil {
				if err != nil || o.Status != domain.StatusPending || o.Version != 1 {
					t.Fatalf("NewOrder = %+v, %v; want a PENDING order at version 1", o, err)
				}
				return
			}
			var ve *domain.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("NewOrder error = %v, want a *ValidationError", err)
			}
			for _, f := range tt.wantFields {
				if ve.Fields[f] == "" {
					t.Errorf("field %s not reported in %v", f, ve.Fields)
				}
			}
			if len(ve.Fields) != len(tt.wantFields) {
				t.Errorf("reported fields %v, want exactly %v", ve.Fields, tt.wantFields)
			}
		})
	}
}

func TestPaymentOutcomes(t *testing.T) {
	t.Parallel()
	confirmed := func(o *domain.Order) { _ = o.ConfirmPayment(1, 100, "EUR", now) }
	tests := []struct {
		name        string
		setup       func(*domain.Order)
		apply       func(*domain.Order) error
		wantErr     error
		wantStatus  domain.Status
		wantVersion int
	}{
		{"completed confirms", nil, func(o *domain.Order) error { return o.ConfirmPayment(1, 100, "EUR", now) },
			nil, domain.StatusConfirmed, 2},
		{"failed cancels", nil, func(o *domain.Order) error { return o.FailPayment(1, "insufficient_funds", now) },
			nil, domain.StatusCancelled, 2},
		{"duplicate completion is stale", confirmed, func(o *domain.Order) error { return o.ConfirmPayment(1, 100, "EUR", now) },
			domain.ErrStale, domain.StatusConfirmed, 2},
		{"failure after confirmation is stale", confirmed, func(o *domain.Order) error { return o.FailPayment(1, "x", now) },
			domain.ErrStale, domain.StatusConfirmed, 2},
		{"completion for another amount never confirms", nil, func(o *domain.Order) error { return o.ConfirmPayment(1, 99, "EUR", now) },
			domain.ErrPaymentMismatch, domain.StatusPending, 1},
		{"completion in another currency never confirms", nil, func(o *domain.Order) error { return o.ConfirmPayment(1, 100, "USD", now) },
			domain.ErrPaymentMismatch, domain.StatusPending, 1},
		{"refund failure on a cancelled order", func(o *domain.Order) { o.Cancel("x", now) },
			func(o *domain.Order) error { return o.FailRefund(2, "account_not_found", now) },
			nil, domain.StatusCancelled, 3},
		{"event from the future", nil, func(o *domain.Order) error { return o.ConfirmPayment(7, 100, "EUR", now) },
			domain.ErrFromTheFuture, domain.StatusPending, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := domain.NewOrder("o-1", "c-1", 100, "EUR", now)
			if err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(o)
			}
			if err := tt.apply(o); !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if o.Status != tt.wantStatus || o.Version != tt.wantVersion {
				t.Fatalf("order is %s v%d, want %s v%d", o.Status, o.Version, tt.wantStatus, tt.wantVersion)
			}
		})
	}
}

func TestFailRefund(t *testing.T) {
	t.Parallel()
	o, err := domain.NewOrder("o-1", "c-1", 100, "EUR", now)
	if err != nil {
		t.Fatal(err)
	}
	var te *domain.TransitionError
	if err := o.FailRefund(1, "account_not_found", now); !errors.As(err, &te) {
		t.Fatalf("FailRefund on a PENDING order = %v, want a *TransitionError", err)
	}
	o.Cancel(domain.ReasonPaymentTimeout, now) // v2: cancelled before the charge was reported
	if err := o.FailRefund(2, "account_not_found", now); err != nil {
		t.Fatal(err)
	}
	if !o.Paid || o.Refunded || o.RefundFailure != "account_not_found" || o.Version != 3 {
		t.Fatalf("order = %+v, want paid, not refunded, refund_failure account_not_found, v3", o)
	}
	if err := o.ConfirmRefund(2, now); !errors.Is(err, domain.ErrStale) {
		t.Fatalf("a refund for v2 after the failure = %v, want ErrStale", err)
	}
}
