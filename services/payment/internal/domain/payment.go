// Package domain is the payment service's model: customer accounts with balances
// and, per order, a payment that charges, refuses or refunds. It knows nothing of
// databases, Kafka or HTTP.
package domain

import (
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/pkg/contract"
)

// Account is a customer's balance in one currency.
type Account struct {
	CustomerID   string
	BalanceCents int64
	Currency     string
}

// Funds is a customer's account as a payment reaches it, inside the payment's
// transaction; the repository implements it.
type Funds interface {
	// DebitIfEnough takes amountCents from the account, in one conditional
	// write, exactly when Place would charge it: the account exists, is in
	// currency and holds at least amountCents. It reports whether it did; false
	// changes nothing. Errors are the storage's.
	DebitIfEnough(amountCents int64, currency string) (bool, error)
	// Account returns the account under its row lock, nil if there is none. A
	// change of its BalanceCents is stored with the payment.
	Account() (*Account, error)
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
	// StatusRefundFailed: the order was charged, then cancelled, but the charge
	// could not be paid back (Reason says why, e.g. the account no longer exists);
	// nothing moved, and people settle it.
	StatusRefundFailed PaymentStatus = "REFUND_FAILED"
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

// ErrStale marks a placement this payment has already acted on, or one older
// than what it acted on: nothing to do.
var ErrStale = errors.New("stale placement")

// ErrInconsistent marks an event that does not fit the payment's history.
var ErrInconsistent = errors.New("event does not fit the payment")

// CheckPlacement decides whether a placement (the order placed at orderVersion
// by customerID for amountCents in currency) may be acted on. A placement is an
// order's first event, so only a payment nothing has happened to yet may charge
// or refuse: nil. Any other payment gives
//   - ErrStale if the placement agrees with it and is not newer: a duplicate, or
//     the late placement of an order cancelled first;
//   - ErrInconsistent (wrapped, with the details) if it names another customer,
//     amount or currency than the payment was placed with, or a version newer
//     than the payment acted on, which the order service never sends (its
//     placement is version 1, and every later event of the order is newer).
func (p *Payment) CheckPlacement(orderVersion int, customerID string, amountCents int64, currency string) error {
	switch {
	case p.Status == StatusNone:
		return nil
	case p.CustomerID != "" && (customerID != p.CustomerID || amountCents != p.AmountCents || currency != p.Currency):
		return fmt.Errorf("%w: placement of %d %s by %s, the payment was placed for %d %s by %s",
			ErrInconsistent, amountCents, currency, customerID, p.AmountCents, p.Currency, p.CustomerID)
	case orderVersion > p.OrderVersion:
		return fmt.Errorf("%w: placement at order version %d, the payment (%s) acted on version %d already",
			ErrInconsistent, orderVersion, p.Status, p.OrderVersion)
	}
	return ErrStale
}

// Charge is Place on the customer's funds: one conditional debit when the
// charge goes through (the common case), and only when it does not, the account
// is read and Place decides, on it, why it refuses (or charges after all, if
// money arrived in between; the changed balance is then stored). A placement
// CheckPlacement refuses returns its error before any debit. Other errors are
// funds' and leave the payment as it was.
func (p *Payment) Charge(orderVersion int, customerID string, amountCents int64, currency string, funds Funds, now time.Time) (charged bool, err error) {
	if err := p.CheckPlacement(orderVersion, customerID, amountCents, currency); err != nil {
		return false, err
	}
	debited, err := funds.DebitIfEnough(amountCents, currency)
	if err != nil {
		return false, err
	}
	if debited {
		p.placed(orderVersion, customerID, amountCents, currency, now)
		p.charged(amountCents)
		return true, nil
	}
	acct, err := funds.Account()
	if err != nil {
		return false, err
	}
	return p.Place(orderVersion, customerID, amountCents, currency, acct, now)
}

// Place acts on an order placed at orderVersion: it charges acct (nil if the
// customer has no account) the amount when the account exists, is in the order's
// currency and holds enough; otherwise it refuses with a reason. It reports
// whether it charged. A placement CheckPlacement refuses changes nothing and
// returns its error (ErrStale or ErrInconsistent).
func (p *Payment) Place(orderVersion int, customerID string, amountCents int64, currency string, acct *Account, now time.Time) (charged bool, err error) {
	if err := p.CheckPlacement(orderVersion, customerID, amountCents, currency); err != nil {
		return false, err
	}
	p.placed(orderVersion, customerID, amountCents, currency, now)
	switch {
	case acct == nil:
		p.refuse(contract.ReasonUnknownCustomer)
	case acct.Currency != currency:
		p.refuse(contract.ReasonCurrencyMismatch)
	case acct.BalanceCents < amountCents:
		p.refuse(contract.ReasonInsufficientFunds)
	default:
		acct.BalanceCents -= amountCents
		p.charged(amountCents)
		return true, nil
	}
	return false, nil
}

// placed records the order's placement at orderVersion.
func (p *Payment) placed(orderVersion int, customerID string, amountCents int64, currency string, now time.Time) {
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now
	}
	p.CustomerID, p.AmountCents, p.Currency = customerID, amountCents, currency
	p.OrderVersion, p.UpdatedAt = orderVersion, now
}

// charged records a charge of amountCents (the account was debited).
func (p *Payment) charged(amountCents int64) {
	p.Status, p.Reason = StatusCharged, ""
	p.ChargedCents += amountCents
	p.movements = append(p.movements, Movement{Kind: MovementCharge, AmountCents: amountCents})
}

// CancelOutcome is what Cancel did about the money.
type CancelOutcome struct {
	// RefundedCents went back to the account.
	RefundedCents int64
	// UnrefundedCents should have gone back but could not (FailReason says why).
	UnrefundedCents int64
	FailReason      string
}

// Cancel acts on the order's cancellation at orderVersion and says what it did
// with the money of acct (the payment's customer account; nil if there is none):
//   - nothing happened yet: the payment is marked CANCELLED, so that the order's
//     placement, which is older, is ignored if it arrives later (the "null
//     compensation": nothing to undo, but remember not to do it);
//   - charged: everything charged and not yet refunded goes back to acct;
//     REFUNDED. If the account no longer exists, nothing moves: REFUND_FAILED with
//     reason account_not_found, and the outcome reports the unrefunded amount, so
//     that the caller tells the order service instead of pretending it refunded;
//   - refused, cancelled, refunded or refund failed: nothing moves.
//
// A refund never exceeds what was charged. Cancel does not check IsNewer; the
// caller does.
func (p *Payment) Cancel(orderVersion int, acct *Account, now time.Time) CancelOutcome {
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now
	}
	p.OrderVersion, p.UpdatedAt = orderVersion, now
	var out CancelOutcome
	switch p.Status {
	case StatusNone:
		p.Status = StatusCancelled
	case StatusCharged:
		due := p.ChargedCents - p.RefundedCents
		switch {
		case due <= 0:
			p.Status = StatusRefunded
		case acct == nil:
			p.Status, p.Reason = StatusRefundFailed, contract.ReasonAccountNotFound
			out.UnrefundedCents, out.FailReason = due, contract.ReasonAccountNotFound
		default:
			acct.BalanceCents += due
			p.RefundedCents += due
			p.movements = append(p.movements, Movement{Kind: MovementRefund, AmountCents: due})
			p.Status, out.RefundedCents = StatusRefunded, due
		}
	}
	return out
}

func (p *Payment) refuse(reason string) { p.Status, p.Reason = StatusRefused, reason }

// Movements returns the balance changes made since the payment was loaded, for
// the repository to append to the ledger.
func (p *Payment) Movements() []Movement { return p.movements }
