// Package domain is the payment service's model: customer accounts with balances
// and, per order, a payment that charges, refuses or refunds. It knows nothing of
// databases, Kafka or HTTP.
package domain

import (
	"errors"
	"time"
)

// Account is a customer's balance in one currency.
type Account struct {
	CustomerID   string
	BalanceCents int64
	Currency     string
}

// PaymentStatus is where an order's payment stands.
type PaymentStatus string

// The states of a payment.
const (
	// StatusNone: nothing has happened for this order yet.
	StatusNone PaymentStatus = ""
	// StatusCharged: the customer was charged the order's amount.
	StatusCharged PaymentStatus = "CHARGED"
	// StatusRefused: the charge was refused (Reason says why); nothing moved.
	StatusRefused PaymentStatus = "REFUSED"
	// StatusCancelled: the order was cancelled before anything was charged; a
	// placement that arrives later (it is older) is never charged.
	StatusCancelled PaymentStatus = "CANCELLED"
	// StatusRefunded: the order was charged, then cancelled and refunded in full.
	StatusRefunded PaymentStatus = "REFUNDED"
)

// Reasons a charge is refused (they match events.Reason*).
const (
	ReasonInsufficientFunds = "insufficient_funds"
	ReasonUnknownCustomer   = "unknown_customer"
	ReasonCurrencyMismatch  = "currency_mismatch"
)

// MovementKind says which way money moved.
type MovementKind string

// The kinds of ledger movements.
const (
	MovementCharge MovementKind = "charge"
	MovementRefund MovementKind = "refund"
)

// Movement is one change of a customer's balance, for the ledger.
type Movement struct {
	Kind        MovementKind
	AmountCents int64
}

// ErrNoAccount is returned by repositories for an unknown customer.
var ErrNoAccount = errors.New("no such account")

// Payment is the payment side of one order.
type Payment struct {
	OrderID     string
	CustomerID  string
	AmountCents int64
	Currency    string
	Status      PaymentStatus
	// Reason says why the payment was refused.
	Reason string
	// OrderVersion is the newest version of the order this payment has acted on;
	// events for older versions are stale.
	OrderVersion  int
	ChargedCents  int64
	RefundedCents int64
	CreatedAt     time.Time
	UpdatedAt     time.Time

	movements []Movement
}

// NewPayment returns the empty payment of an order nothing has happened to yet.
func NewPayment(orderID string) *Payment { return &Payment{OrderID: orderID} }

// IsNewer reports whether an event for orderVersion is newer than anything this
// payment has acted on. Events that are not newer are stale or duplicates.
func (p *Payment) IsNewer(orderVersion int) bool {
	return p.Status == StatusNone || orderVersion > p.OrderVersion
}

// Place acts on an order placed at orderVersion: it charges acct (nil if the
// customer has no account) the amount when the account exists, is in the order's
// currency and holds enough; otherwise it refuses with a reason. It reports
// whether it charged. Place does not check IsNewer: the use case does first
// and ignores an event that is not newer (services/payment/internal/app).
func (p *Payment) Place(orderVersion int, customerID string, amountCents int64, currency string, acct *Account, now time.Time) (charged bool) {
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now
	}
	p.CustomerID, p.AmountCents, p.Currency = customerID, amountCents, currency
	p.OrderVersion, p.UpdatedAt = orderVersion, now
	switch {
	case acct == nil:
		p.refuse(ReasonUnknownCustomer)
	case acct.Currency != currency:
		p.refuse(ReasonCurrencyMismatch)
	case acct.BalanceCents < amountCents:
		p.refuse(ReasonInsufficientFunds)
	default:
		acct.BalanceCents -= amountCents
		p.Status, p.Reason = StatusCharged, ""
		p.ChargedCents += amountCents
		p.movements = append(p.movements, Movement{Kind: MovementCharge, AmountCents: amountCents})
		return true
	}
	return false
}

// Cancel acts on the order's cancellation at orderVersion and returns what it
// refunded to acct (the payment's customer account; nil if there is none):
//   - nothing happened yet: the payment is marked CANCELLED, so that the order's
//     placement, which is older, is ignored if it arrives later (the "null
//     compensation": nothing to undo, but remember not to do it);
//   - charged: everything charged and not yet refunded goes back to acct; REFUNDED;
//   - refused, cancelled or refunded: nothing moves.
//
// A refund never exceeds what was charged. Like Place, Cancel does not check
// IsNewer; the caller does.
func (p *Payment) Cancel(orderVersion int, acct *Account, now time.Time) (refunded int64) {
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now
	}
	p.OrderVersion, p.UpdatedAt = orderVersion, now
	switch p.Status {
	case StatusNone:
		p.Status = StatusCancelled
	case StatusCharged:
		refunded = p.ChargedCents - p.RefundedCents
		if refunded > 0 && acct != nil {
			acct.BalanceCents += refunded
			p.RefundedCents += refunded
			p.movements = append(p.movements, Movement{Kind: MovementRefund, AmountCents: refunded})
		} else {
			refunded = 0
		}
		p.Status = StatusRefunded
	}
	return refunded
}

func (p *Payment) refuse(reason string) { p.Status, p.Reason = StatusRefused, reason }

// Movements returns the balance changes made since the payment was loaded, for
// the repository to append to the ledger.
func (p *Payment) Movements() []Movement { return p.movements }
