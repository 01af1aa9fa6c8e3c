// Package events holds the contracts the order and payment services exchange over
// Kafka: event types, their payloads, the JSON envelope that carries them, and the
// topics they travel on.
//
// An event is a fact about one order. Every event carries:
//   - ID: the Watermill message UUID. It survives the outbox and the forwarder and
//     is the key consumers deduplicate on.
//   - Type and SchemaVersion: what the payload means and which shape it has.
//   - OrderID: the aggregate it is about; also the Kafka message key, so all
//     events of one order land on one partition, in order.
//   - OrderVersion: the order's aggregate version the event belongs to; consumers
//     use it to recognise stale events (see ADR 0008).
//   - OccurredAt: when the producing service decided it.
//
// The correlation ID is not part of the payload: it travels in the message
// metadata (Watermill's "correlation_id"), like any other tracing context.
//
// Changing a payload: decoding is strict (unknown fields are rejected), so any
// change of a payload's JSON is a new schema version of its type. The payload
// type always has the newest version's shape; each older version keeps a frozen
// struct of its own and one upcaster to the next version, registered in the
// schemas table (versions.go). Decode accepts every version from 1 to the
// newest and upcasts step by step, so consumers see one type; Encode writes the
// version the event names, or the type's default write version, which stays the
// old one until every consumer reads the new one.
package events

import (
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/pkg/contract"
)

// Type names an event. It is written into every envelope and never reused for
// another meaning.
type Type string

// The event types of the saga.
const (
	// TypeOrderPlaced is emitted by the order service when an order is accepted.
	TypeOrderPlaced Type = "order.placed"
	// TypeOrderCancelled is emitted by the order service when an order is cancelled
	// by the customer or by the payment timeout; the payment service refunds what it
	// charged, or remembers not to charge a late OrderPlaced.
	TypeOrderCancelled Type = "order.cancelled"
	// TypePaymentCompleted is emitted by the payment service after it charged an order.
	TypePaymentCompleted Type = "payment.completed"
	// TypePaymentFailed is emitted by the payment service when it refused to charge.
	TypePaymentFailed Type = "payment.failed"
	// TypePaymentRefunded is emitted by the payment service after it refunded a charge.
	TypePaymentRefunded Type = "payment.refunded"
	// TypePaymentRefundFailed is emitted by the payment service when it could not
	// refund a charge of a cancelled order (the account no longer exists): no
	// money moved, and people have to settle it.
	TypePaymentRefundFailed Type = "payment.refund_failed"
)

// Payload is the type-specific part of an event.
type Payload interface {
	// EventType is the Type this payload is carried under.
	EventType() Type
	// Validate reports the first field that breaks the contract, as an error.
	Validate() error
}

// Event is one decoded (or to be encoded) event.
type Event struct {
	// ID is the event's unique id, equal to the Watermill message UUID.
	ID string
	// SchemaVersion is the schema version of the event on the wire. Decode sets
	// the version it read (the payload has the newest shape whatever it was);
	// Encode writes this version, or the type's DefaultWriteVersion if it is 0.
	SchemaVersion int
	// OrderID is the order the event is about and the Kafka message key.
	OrderID string
	// OrderVersion is the order aggregate version this event belongs to (>= 1).
	OrderVersion int
	// OccurredAt is when the producer decided the fact, in UTC.
	OccurredAt time.Time
	// CorrelationID ties together every event caused by one request; it travels in
	// the message metadata.
	CorrelationID string
	// Payload is one of the payload types of this package.
	Payload Payload
}

// Type is the event's type, taken from its payload.
func (e Event) Type() Type {
	if e.Payload == nil {
		return ""
	}
	return e.Payload.EventType()
}

// Validate checks the envelope fields and the payload (an event that passes it
// can be encoded: occurred_at lies in the years 1..9999 in UTC). It returns an
// error that matches ErrInvalid.
func (e Event) Validate() error {
	switch {
	case e.ID == "":
		return invalid("event id is empty")
	case !contract.ValidID(e.OrderID):
		return invalid("order_id %q is not a valid order id", e.OrderID)
	case e.OrderVersion < 1:
		return invalid("order_version %d is below 1", e.OrderVersion)
	case e.OccurredAt.IsZero():
		return invalid("occurred_at is missing")
	case e.OccurredAt.UTC().Year() < 1 || e.OccurredAt.UTC().Year() > 9999:
		// Encode writes the time in UTC, as RFC 3339, which has four-digit
		// years: a time east of UTC in year 0 would decode but never encode.
		return invalid("occurred_at %s is outside the years 1..9999 in UTC", e.OccurredAt.Format(time.RFC3339))
	case e.Payload == nil:
		return invalid("payload is missing")
	}
	if err := e.Payload.Validate(); err != nil {
		return invalid("%s: %v", e.Payload.EventType(), err)
	}
	return nil
}

// OrderPlaced says that an order was accepted and waits for payment. Its
// shape is schema version 2 (money as one object); version 1 events
// (flat amount_cents and currency) decode into it through the upcaster in
// versions.go, so a consumer sees this one type whichever version was written.
type OrderPlaced struct {
	CustomerID string `json:"customer_id"`
	// Amount is what the order costs, charged in one payment.
	Amount Money `json:"amount"`
}

// EventType implements Payload.
func (OrderPlaced) EventType() Type { return TypeOrderPlaced }

// Validate implements Payload.
func (p OrderPlaced) Validate() error {
	return errors.Join(validCustomer(p.CustomerID), p.Amount.validate("amount"))
}

// Money is an amount in one currency, as the wire carries it from schema
// version 2 on: the amount and its currency travel together, and the amount is
// counted in the currency's minor units (cents for EUR, yen for JPY, fils for
// BHD), whatever their number of decimals.
type Money struct {
	// MinorUnits is the amount in the currency's smallest unit, 1..contract.MaxAmountCents.
	MinorUnits int64 `json:"minor_units"`
	// Currency is an ISO 4217 code (three capital letters).
	Currency string `json:"currency"`
}

// validate reports the first rule the amount breaks, naming the field as name.
func (m Money) validate(name string) error {
	if !contract.ValidAmount(m.MinorUnits) {
		return fmt.Errorf("%s.minor_units %d is outside 1..%d", name, m.MinorUnits, int64(contract.MaxAmountCents))
	}
	if !contract.ValidCurrency(m.Currency) {
		return fmt.Errorf("%s.currency %q is not three capital letters", name, m.Currency)
	}
	return nil
}

// OrderCancelled says that an order was cancelled. Paid tells whether the order
// service had seen the payment complete; the payment service refunds whatever it
// charged either way.
type OrderCancelled struct {
	Reason string `json:"reason"`
	Paid   bool   `json:"paid"`
}

// EventType implements Payload.
func (OrderCancelled) EventType() Type { return TypeOrderCancelled }

// Validate implements Payload.
func (p OrderCancelled) Validate() error { return validReason(p.Reason) }

// PaymentCompleted says that the customer was charged for the order.
type PaymentCompleted struct {
	CustomerID  string `json:"customer_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
}

// EventType implements Payload.
func (PaymentCompleted) EventType() Type { return TypePaymentCompleted }

// Validate implements Payload.
func (p PaymentCompleted) Validate() error {
	return errors.Join(validCustomer(p.CustomerID), validAmount(p.AmountCents), validCurrency(p.Currency))
}

// PaymentFailed says that the payment service refused to charge the order, for
// Reason (one of the contract.Reason* refusal codes).
type PaymentFailed struct {
	Reason string `json:"reason"`
}

// EventType implements Payload.
func (PaymentFailed) EventType() Type { return TypePaymentFailed }

// Validate implements Payload.
func (p PaymentFailed) Validate() error { return validReason(p.Reason) }

// PaymentRefunded says that a charge for the order was paid back in full.
type PaymentRefunded struct {
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
}

// EventType implements Payload.
func (PaymentRefunded) EventType() Type { return TypePaymentRefunded }

// Validate implements Payload.
func (p PaymentRefunded) Validate() error {
	return errors.Join(validAmount(p.AmountCents), validCurrency(p.Currency))
}

// PaymentRefundFailed says that a charge for the cancelled order could not be
// paid back: AmountCents in Currency stay charged, for Reason (one of the
// contract.Reason* refund failure codes).
type PaymentRefundFailed struct {
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Reason      string `json:"reason"`
}

// EventType implements Payload.
func (PaymentRefundFailed) EventType() Type { return TypePaymentRefundFailed }

// Validate implements Payload.
func (p PaymentRefundFailed) Validate() error {
	return errors.Join(validAmount(p.AmountCents), validCurrency(p.Currency), validReason(p.Reason))
}

// The rules of ids, amounts, currencies and reasons are package contract's,
// shared with the services' domains; these turn them into contract errors.

func validCustomer(s string) error {
	if !contract.ValidID(s) {
		return fmt.Errorf("customer_id %q is not a valid id", s)
	}
	return nil
}

func validAmount(a int64) error {
	if !contract.ValidAmount(a) {
		return fmt.Errorf("amount_cents %d is outside 1..%d", a, int64(contract.MaxAmountCents))
	}
	return nil
}

func validCurrency(c string) error {
	if !contract.ValidCurrency(c) {
		return fmt.Errorf("currency %q is not three capital letters", c)
	}
	return nil
}

func validReason(r string) error {
	if !contract.ValidReason(r) {
		return fmt.Errorf("reason must have 1..%d characters", contract.MaxReasonLength)
	}
	return nil
}
