package app

import (
	"testing"

	"github.com/onceflow/onceflow/services/order/internal/domain"
)

func TestOutcomeOf(t *testing.T) {
	pending := domain.Order{Status: domain.StatusPending}
	confirmed := domain.Order{Status: domain.StatusConfirmed, Paid: true}
	cancelled := func(reason string) domain.Order {
		return domain.Order{Status: domain.StatusCancelled, CancelReason: reason}
	}
	paidCancelled := domain.Order{Status: domain.StatusCancelled, CancelReason: domain.ReasonCancelledByCustomer, Paid: true}
	refunded := paidCancelled
	refunded.Refunded = true
	refundFailed := paidCancelled
	refundFailed.RefundFailure = "account_closed"
	for _, c := range []struct {
		name          string
		before, after domain.Order
		want          string
	}{
		{"confirmed", pending, confirmed, OutcomeConfirmed},
		{"payment failed", pending, cancelled("payment_failed: insufficient_funds"), OutcomeCancelledPaymentFailed},
		{"timed out", pending, cancelled(domain.ReasonPaymentTimeout), OutcomeCancelledPaymentTimeout},
		{"by the customer", confirmed, cancelled(domain.ReasonCancelledByCustomer), OutcomeCancelledByCustomer},
		{"another reason", pending, cancelled("something_new"), OutcomeCancelledOther},
		{"refunded", paidCancelled, refunded, OutcomeRefunded},
		{"refund failed", paidCancelled, refundFailed, OutcomeRefundFailed},
		{"no change (duplicate report)", confirmed, confirmed, ""},
		{"cancelled again", paidCancelled, paidCancelled, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := outcomeOf(&c.before, &c.after); got != c.want {
				t.Errorf("outcomeOf = %q, want %q", got, c.want)
			}
		})
	}
}
