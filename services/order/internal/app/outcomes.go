package app

import (
	"context"
	"strings"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// The saga outcomes Outcomes is told about: a fixed set (they are metric
// label values). The payment refusal's own reason
// (insufficient_funds, ...) is not part of it: it stays in the order.
const (
	OutcomeConfirmed               = "confirmed"
	OutcomeCancelledPaymentFailed  = "cancelled_payment_failed"
	OutcomeCancelledPaymentTimeout = "cancelled_payment_timeout"
	OutcomeCancelledByCustomer     = "cancelled_by_customer"
	OutcomeCancelledOther          = "cancelled_other"
	OutcomeRefunded                = "refunded"
	OutcomeRefundFailed            = "refund_failed"
)

// SagaOutcomes lists every outcome, for adapters that show them at zero.
var SagaOutcomes = []string{OutcomeConfirmed, OutcomeCancelledPaymentFailed, OutcomeCancelledPaymentTimeout,
	OutcomeCancelledByCustomer, OutcomeCancelledOther, OutcomeRefunded, OutcomeRefundFailed}

// Outcomes is the port told each outcome an order reaches (a metrics
// adapter), once the repository accepted the change that reached it. Duplicate
// and stale reports change nothing and are not told. Within a consumer the
// change commits with the inbox transaction around it: if that rolls back
// after the change (rare: the commit itself fails), the redelivered message
// tells the outcome again, so a count may exceed the orders by such retries.
// SagaOutcome must be cheap and must not block.
type Outcomes interface {
	SagaOutcome(outcome string)
}

// outcomeOf names the outcome the change from before to after reached, or ""
// if it reached none.
func outcomeOf(before, after *domain.Order) string {
	switch {
	case before.Status != after.Status && after.Status == domain.StatusConfirmed:
		return OutcomeConfirmed
	case before.Status != after.Status && after.Status == domain.StatusCancelled:
		switch {
		case strings.HasPrefix(after.CancelReason, "payment_failed"):
			return OutcomeCancelledPaymentFailed
		case after.CancelReason == domain.ReasonPaymentTimeout:
			return OutcomeCancelledPaymentTimeout
		case after.CancelReason == domain.ReasonCancelledByCustomer:
			return OutcomeCancelledByCustomer
		}
		return OutcomeCancelledOther
	case !before.Refunded && after.Refunded:
		return OutcomeRefunded
	case before.RefundFailure == "" && after.RefundFailure != "":
		return OutcomeRefundFailed
	}
	return ""
}

// observed wraps the change fn so that *outcome holds the outcome it reached
// (that of the last attempt, when the repository retries its transaction).
func observed(fn func(o *domain.Order) ([]events.Event, error), outcome *string) func(o *domain.Order) ([]events.Event, error) {
	return func(o *domain.Order) ([]events.Event, error) {
		before := *o
		evs, err := fn(o)
		*outcome = ""
		if err == nil {
			*outcome = outcomeOf(&before, o)
		}
		return evs, err
	}
}

// tellOutcome tells s.Outcomes about outcome if the change was accepted (err
// is nil): through s.AfterCommit when set, so that a change made in a
// transaction ctx carries is told only once that commits.
func (s *Service) tellOutcome(ctx context.Context, outcome string, err error) {
	if err != nil || outcome == "" || s.Outcomes == nil {
		return
	}
	tell := func() { s.Outcomes.SagaOutcome(outcome) }
	if s.AfterCommit != nil {
		s.AfterCommit(ctx, tell)
		return
	}
	tell()
}
