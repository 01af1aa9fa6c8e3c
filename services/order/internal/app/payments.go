package app

import (
	"context"
	"errors"
	"time"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// The commands below are what the payment service reports about an order, as
// the order service's use cases see them: typed, with the order version the
// report answers. The Kafka inbound adapter builds them from the payment
// events; the application never sees the wire types.
//
// Every report is applied under the order's row lock (Orders.Update), in the
// transaction the caller's ctx carries (the consumer's inbox), and follows the
// same rules:
//   - a report for an older version of the order (overtaken or duplicated) is
//     ignored: nil, nothing changes;
//   - an unknown order is apperr.CodeNotFound, reason ReasonUnknownOrder;
//   - a version the order never had, or a transition its status does not allow,
//     is apperr.CodeConflict, reason ReasonInconsistentEvent;
//   - storage failures are apperr.CodeUnavailable or apperr.CodeInternal.

// ConfirmPayment reports that the order's payment for Version was charged:
// AmountCents in Currency.
type ConfirmPayment struct {
	OrderID     string
	Version     int
	AmountCents int64
	Currency    string
}

// FailPayment reports that the payment for Version was refused, for Reason
// (one of the contract.Reason* refusal codes).
type FailPayment struct {
	OrderID string
	Version int
	Reason  string
}

// RecordRefund reports that the charge of the order, cancelled at Version, was
// paid back.
type RecordRefund struct {
	OrderID string
	Version int
}

// RecordRefundFailure reports that the charge of the order, cancelled at
// Version, could not be paid back: AmountCents in Currency stay charged, for
// Reason (one of the contract.Reason* refund failure codes).
type RecordRefundFailure struct {
	OrderID     string
	Version     int
	AmountCents int64
	Currency    string
	Reason      string
	// CorrelationID ties the report to the request that started the saga (for
	// the alert line).
	CorrelationID string
}

// AlertRefundFailed is the value of the "alert" attribute of the ERROR line
// RecordRefundFailure writes: what an alert rule watches (README, operations).
const AlertRefundFailed = "refund_failed"

// ConfirmPayment confirms a PENDING order, only if the charge is the order's
// amount and currency: a mismatch is apperr.CodeInvalid with reason
// ReasonPaymentMismatch and leaves the order PENDING (it then times out).
// Otherwise the rules of every payment report apply (see the commands).
func (s *Service) ConfirmPayment(ctx context.Context, cmd ConfirmPayment) error {
	return s.applyReport(ctx, "confirm payment", cmd.OrderID, cmd.Version, func(o *domain.Order, now time.Time) error {
		return o.ConfirmPayment(cmd.Version, cmd.AmountCents, cmd.Currency, now)
	})
}

// FailPayment cancels a PENDING order whose payment was refused, with the
// reason "payment_failed: <Reason>". The rules of every payment report apply.
func (s *Service) FailPayment(ctx context.Context, cmd FailPayment) error {
	return s.applyReport(ctx, "fail payment", cmd.OrderID, cmd.Version, func(o *domain.Order, now time.Time) error {
		return o.FailPayment(cmd.Version, cmd.Reason, now)
	})
}

// RecordRefund marks a cancelled order paid and refunded. The rules of every
// payment report apply.
func (s *Service) RecordRefund(ctx context.Context, cmd RecordRefund) error {
	return s.applyReport(ctx, "record refund", cmd.OrderID, cmd.Version, func(o *domain.Order, now time.Time) error {
		return o.ConfirmRefund(cmd.Version, now)
	})
}

// RecordRefundFailure marks a cancelled order paid, not refunded, with the
// reason as its refund failure, and once that is stored logs an alert: an
// ERROR line with alert=refund_failed, the order id, the correlation id, the
// amount and the reason, because people have to settle it. A duplicate or
// stale report changes nothing and logs no alert. The rules of every payment
// report apply.
func (s *Service) RecordRefundFailure(ctx context.Context, cmd RecordRefundFailure) error {
	recorded := false
	err := s.applyReport(ctx, "record refund failure", cmd.OrderID, cmd.Version, func(o *domain.Order, now time.Time) error {
		recorded = false // a retried transaction starts again
		if err := o.FailRefund(cmd.Version, cmd.Reason, now); err != nil {
			return err
		}
		recorded = true
		return nil
	})
	if err == nil && recorded {
		s.logger.ErrorContext(ctx, "the payment service could not refund a cancelled order; settle it by hand",
			"alert", AlertRefundFailed, "order_id", cmd.OrderID, "correlation_id", cmd.CorrelationID,
			"amount_cents", cmd.AmountCents, "currency", cmd.Currency, "reason", cmd.Reason)
	}
	return err
}

// applyReport runs change on the order under its row lock and maps the domain's
// verdict to the rules of every payment report.
func (s *Service) applyReport(ctx context.Context, what, orderID string, version int, change func(o *domain.Order, now time.Time) error) error {
	var outcome string
	err := s.orders.Update(ctx, orderID, observed(func(o *domain.Order) ([]events.Event, error) {
		return nil, change(o, s.Now())
	}, &outcome))
	s.tellOutcome(ctx, outcome, err)
	var te *domain.TransitionError
	switch {
	case errors.Is(err, domain.ErrStale):
		s.logger.InfoContext(ctx, "ignored a stale payment report", "report", what,
			"order_id", orderID, "report_order_version", version)
		return nil
	case errors.Is(err, domain.ErrNotFound):
		return &apperr.Error{Code: apperr.CodeNotFound, Message: "payment report for unknown order " + orderID,
			Reason: ReasonUnknownOrder, Err: err}
	case errors.Is(err, domain.ErrFromTheFuture), errors.As(err, &te):
		return &apperr.Error{Code: apperr.CodeConflict, Message: "payment report does not fit the order's history",
			Reason: ReasonInconsistentEvent, Err: err}
	case errors.Is(err, domain.ErrPaymentMismatch):
		return &apperr.Error{Code: apperr.CodeInvalid, Message: "payment does not match the order; the order stays unconfirmed",
			Reason: ReasonPaymentMismatch, Err: err}
	}
	return err
}
