// Package domain is the order aggregate and its state machine. It knows nothing
// of databases, Kafka or HTTP.
//
//	PENDING ──payment completed──▶ CONFIRMED ──cancel──▶ CANCELLED, paid (refund pending)
//	   │                                                        │
//	   ├──payment failed──▶ CANCELLED (reason from payment)     └──payment refunded──▶ refunded
//	   └──cancel / payment timeout──▶ CANCELLED ──payment refunded (if it was charged meanwhile)──▶ refunded
//
// A refund the payment service could not make (the customer's account no longer
// exists) ends a CANCELLED order paid, not refunded, with RefundFailure set: an
// explicit outcome for people to resolve, instead of an order that waits forever.
//
// Every change bumps Version by one. Events carry the version of the order they
// were produced for, so a handler can tell an answer to the current state from a
// stale one (ErrStale).
package domain

import (
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/pkg/contract"
)

// Status is where an order stands.
type Status string

// The states of an order. CONFIRMED and CANCELLED are terminal for the saga's
// forward path; a CONFIRMED order can still be cancelled (with a refund).
const (
	StatusPending   Status = "PENDING"
	StatusConfirmed Status = "CONFIRMED"
	StatusCancelled Status = "CANCELLED"
)

// Errors of the order aggregate.
var (
	// ErrInvalid wraps every validation failure of NewOrder (see ValidationError).
	ErrInvalid = errors.New("invalid order")
	// ErrNotFound is returned by repositories for an unknown order id.
	ErrNotFound = errors.New("order not found")
	// ErrStale means an event answers an older version of the order than the
	// current one: it was overtaken (e.g. the order was cancelled meanwhile) or is
	// a duplicate. Handlers ignore it.
	ErrStale = errors.New("stale event")
	// ErrFromTheFuture means an event claims a version the order has not reached:
	// it cannot belong to this order's history.
	ErrFromTheFuture = errors.New("event for a version the order never had")
	// ErrPaymentMismatch means a payment report names another amount or currency
	// than the order's: it must never confirm the order (see ConfirmPayment).
	ErrPaymentMismatch = errors.New("payment does not match the order")
)

// ValidationError lists the fields of an order that break the rules. It matches
// ErrInvalid with errors.Is.
type ValidationError struct {
	// Fields maps a field name (as in the API) to what is wrong with it.
	Fields map[string]string
}

// Error implements error.
func (e *ValidationError) Error() string { return fmt.Sprintf("invalid order: %v", e.Fields) }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// TransitionError says an action is not allowed in the order's current status.
type TransitionError struct {
	From   Status
	Action string
}

// Error implements error.
func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s an order that is %s", e.Action, e.From)
}

// Order is the aggregate.
type Order struct {
	ID          string
	CustomerID  string
	AmountCents int64
	Currency    string
	Status      Status
	// CancelReason says why a CANCELLED order was cancelled.
	CancelReason string
	// Paid is true once the payment service reported the charge.
	Paid bool
	// Refunded is true once the payment service reported a refund.
	Refunded bool
	// RefundFailure is set when the payment service reported that it could not
	// refund the charge (e.g. "account_not_found"); the order stays paid and not
	// refunded, and someone has to settle it by hand.
	RefundFailure string
	Version       int
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// NewOrder validates the input and returns a PENDING order at version 1. The
// error is a *ValidationError naming every bad field. The rules are the shared
// contract's (package contract: the events carry the same id, amount and
// currency rules), so an order accepted here is never an event its consumer
// refuses.
func NewOrder(id, customerID string, amountCents int64, currency string, now time.Time) (*Order, error) {
	fields := map[string]string{}
	if !contract.ValidID(customerID) {
		fields["customer_id"] = contract.IDRule
	}
	if !contract.ValidAmount(amountCents) {
		fields["amount_cents"] = contract.AmountRule
	}
	if !contract.ValidCurrency(currency) {
		fields["currency"] = contract.CurrencyRule
	}
	if len(fields) > 0 {
		return nil, &ValidationError{Fields: fields}
	}
	return &Order{
		ID: id, CustomerID: customerID, AmountCents: amountCents, Currency: currency,
		Status: StatusPending, Version: 1, CreatedAt: now, UpdatedAt: now,
	}, nil
}

// checkVersion tells whether an event produced for order version v applies now.
func (o *Order) checkVersion(v int) error {
	switch {
	case v < o.Version:
		return ErrStale
	case v > o.Version:
		return fmt.Errorf("%w: event for v%d, order at v%d", ErrFromTheFuture, v, o.Version)
	}
	return nil
}

func (o *Order) bump(now time.Time) {
	o.Version++
	o.UpdatedAt = now
}

// ConfirmPayment records that the payment for version v succeeded, charging
// amountCents in currency: PENDING → CONFIRMED. ErrStale if v is older than the
// order (it moved on, e.g. was cancelled: the payment service refunds on its own
// when it sees the cancellation). An amount or currency other than the order's
// is an error matching ErrPaymentMismatch and leaves the order unchanged: a
// charge of the wrong sum never confirms an order.
func (o *Order) ConfirmPayment(v int, amountCents int64, currency string, now time.Time) error {
	if err := o.checkVersion(v); err != nil {
		return err
	}
	if o.Status != StatusPending {
		return &TransitionError{From: o.Status, Action: "confirm"}
	}
	if amountCents != o.AmountCents || currency != o.Currency {
		return fmt.Errorf("%w: charged %d %s, order is for %d %s",
			ErrPaymentMismatch, amountCents, currency, o.AmountCents, o.Currency)
	}
	o.Status, o.Paid = StatusConfirmed, true
	o.bump(now)
	return nil
}

// FailPayment records that the payment for version v was refused: PENDING →
// CANCELLED with the reason. ErrStale if v is older than the order.
func (o *Order) FailPayment(v int, reason string, now time.Time) error {
	if err := o.checkVersion(v); err != nil {
		return err
	}
	if o.Status != StatusPending {
		return &TransitionError{From: o.Status, Action: "fail the payment of"}
	}
	o.Status, o.CancelReason = StatusCancelled, "payment_failed: "+reason
	o.bump(now)
	return nil
}

// Cancellation reasons set by the order service itself.
const (
	ReasonCancelledByCustomer = "cancelled_by_customer"
	ReasonPaymentTimeout      = "payment_timeout"
)

// Cancel cancels the order with reason. A PENDING order is cancelled before any
// payment result (the payment service will refund if it charged meanwhile, and
// will not charge a late placement); a CONFIRMED order is cancelled and needs a
// refund (Paid stays true until the refund is reported). It reports changed =
// false for an order that is already CANCELLED: cancelling twice is a no-op.
func (o *Order) Cancel(reason string, now time.Time) (changed bool) {
	if o.Status == StatusCancelled {
		return false
	}
	o.Status, o.CancelReason = StatusCancelled, reason
	o.bump(now)
	return true
}

// ConfirmRefund records that the payment service refunded the charge for version
// v (the cancellation's version). ErrStale if v is older than the order.
func (o *Order) ConfirmRefund(v int, now time.Time) error {
	if err := o.checkVersion(v); err != nil {
		return err
	}
	if o.Status != StatusCancelled || o.Refunded {
		return &TransitionError{From: o.Status, Action: "refund"}
	}
	// The charge may have happened after a PENDING order was cancelled (payment
	// timeout): then the order learns of it only now.
	o.Paid, o.Refunded = true, true
	o.bump(now)
	return nil
}

// FailRefund records that the payment service could not refund the charge for
// version v (the cancellation's version), for reason: the order stays CANCELLED,
// is marked paid (the charge may have happened after a PENDING order was
// cancelled) and not refunded, with RefundFailure = reason. ErrStale if v is
// older than the order; a TransitionError if the order is not CANCELLED or was
// refunded already.
func (o *Order) FailRefund(v int, reason string, now time.Time) error {
	if err := o.checkVersion(v); err != nil {
		return err
	}
	if o.Status != StatusCancelled || o.Refunded {
		return &TransitionError{From: o.Status, Action: "fail the refund of"}
	}
	o.Paid, o.RefundFailure = true, reason
	o.bump(now)
	return nil
}

// PendingSince reports whether the order has waited for its payment since before t.
func (o *Order) PendingSince(t time.Time) bool {
	return o.Status == StatusPending && o.CreatedAt.Before(t)
}
