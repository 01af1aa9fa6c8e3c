// Package app holds the payment service's use cases: charge or refuse an order
// when it is placed, refund it when it is cancelled. Storage goes through the
// Payments port; events leave through the outbox that Payments writes in the
// same transaction as the money moves.
//
// Inbound, the use cases take typed commands (PlacePayment, CancelPayment) that
// the Kafka inbound adapter builds from the order service's events; outbound,
// they build the events their change causes (pkg/events), which the port writes
// to the outbox. Errors are *apperr.Error (or count as apperr.CodeInternal), as
// in the order service; the adapters map their codes at the edge.
package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/services/payment/internal/domain"
)

// Payments is the repository port.
type Payments interface {
	// Update loads, with a row lock, the order's payment (empty if none); calls
	// fn with it and the funds of the payment's customer, or of customerID for a
	// new payment (funds of nobody if customerID is empty: no account, no
	// debit); and if fn returns nil stores the payment, the debit or the
	// account's changed balance, the payment's new ledger movements and the
	// events fn returns, in one transaction (joining the one ctx carries, if
	// any). fn's error aborts everything and is returned unchanged; storage
	// failures, fn's through funds included, are apperr.CodeUnavailable (the
	// database cannot be reached) or internal.
	Update(ctx context.Context, orderID, customerID string, fn func(p *domain.Payment, f domain.Funds) ([]events.Event, error)) error
}

// Service implements the use cases.
type Service struct {
	payments Payments
	logger   *slog.Logger
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// New returns a Service storing payments in payments.
func New(payments Payments, logger *slog.Logger) *Service {
	return &Service{payments: payments, logger: logger,
		Now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
}

// PlacePayment is the order service's report that an order was placed at
// Version: charge CustomerID AmountCents in Currency.
type PlacePayment struct {
	OrderID     string
	Version     int
	CustomerID  string
	AmountCents int64
	Currency    string
	// CorrelationID is carried over to the events the payment emits.
	CorrelationID string
}

// CancelPayment is the order service's report that an order was cancelled at
// Version: refund what was charged, or never charge it.
type CancelPayment struct {
	OrderID string
	Version int
	// CorrelationID is carried over to the events the payment emits.
	CorrelationID string
}

// ReasonInconsistentEvent is the public reason (apperr.Error.Reason) of an
// order event that does not fit the payment's history; the Kafka edge makes it
// the poisoned message's reason code. The order service uses the same word.
const ReasonInconsistentEvent = "inconsistent_event"

// PlacePayment charges the customer (emitting PaymentCompleted) or refuses
// (PaymentFailed with a reason: unknown customer, other currency, insufficient
// funds), all in one transaction (the one ctx carries, if any), and only for an
// order whose payment nothing has happened to yet (domain.CheckPlacement): a
// placement is an order's first event. A placement the payment already acted
// on, or one older than what it acted on (a duplicate, a replay, a placement
// that arrives after the cancellation), is stale: ignored and logged, it
// returns nil. Any other placement of an order with a payment contradicts it
// (another customer, amount or currency, or a newer version, which the order
// service never sends): apperr.CodeConflict with reason ReasonInconsistentEvent,
// so that the message is poisoned for a person to look at, and nothing is
// charged. Other errors: apperr.CodeUnavailable, apperr.CodeInternal.
func (s *Service) PlacePayment(ctx context.Context, cmd PlacePayment) error {
	return s.payments.Update(ctx, cmd.OrderID, cmd.CustomerID, func(p *domain.Payment, f domain.Funds) ([]events.Event, error) {
		now := s.Now()
		var out events.Payload
		charged, err := p.Charge(cmd.Version, cmd.CustomerID, cmd.AmountCents, cmd.Currency, f, now)
		switch {
		case errors.Is(err, domain.ErrStale):
			s.ignored(ctx, "place", cmd.OrderID, cmd.Version, p)
			return nil, nil
		case errors.Is(err, domain.ErrInconsistent):
			return nil, &apperr.Error{Code: apperr.CodeConflict, Message: "the placement does not fit the order's payment; nothing was charged",
				Reason: ReasonInconsistentEvent, Err: err}
		case err != nil:
			return nil, err
		}
		if charged {
			out = events.PaymentCompleted{CustomerID: cmd.CustomerID, AmountCents: cmd.AmountCents, Currency: cmd.Currency}
		} else {
			out = events.PaymentFailed{Reason: p.Reason}
		}
		return []events.Event{reply(cmd.OrderID, cmd.Version, cmd.CorrelationID, now, out)}, nil
	})
}

// CancelPayment refunds what was charged (emitting PaymentRefunded; if the
// account no longer exists nothing moves and it emits PaymentRefundFailed with
// the reason) or, if nothing was charged yet, remembers the cancellation so that
// a late placement is never charged. A report that is not newer than what the
// payment has acted on is ignored and returns nil. Errors:
// apperr.CodeUnavailable, apperr.CodeInternal.
func (s *Service) CancelPayment(ctx context.Context, cmd CancelPayment) error {
	return s.payments.Update(ctx, cmd.OrderID, "", func(p *domain.Payment, f domain.Funds) ([]events.Event, error) {
		if !s.fresh(ctx, "cancel", cmd.OrderID, cmd.Version, p) {
			return nil, nil
		}
		a, err := f.Account() // a refund is rare: read and lock, then write the balance
		if err != nil {
			return nil, err
		}
		now := s.Now()
		out := p.Cancel(cmd.Version, a, now)
		var payload events.Payload
		switch {
		case out.RefundedCents > 0:
			payload = events.PaymentRefunded{AmountCents: out.RefundedCents, Currency: p.Currency}
		case out.UnrefundedCents > 0:
			s.logger.WarnContext(ctx, "could not refund a cancelled order; settle it by hand", "order_id", cmd.OrderID,
				"customer_id", p.CustomerID, "amount_cents", out.UnrefundedCents, "currency", p.Currency, "reason", out.FailReason)
			payload = events.PaymentRefundFailed{AmountCents: out.UnrefundedCents, Currency: p.Currency, Reason: out.FailReason}
		default:
			return nil, nil
		}
		return []events.Event{reply(cmd.OrderID, cmd.Version, cmd.CorrelationID, now, payload)}, nil
	})
}

// fresh reports whether a report for orderVersion is newer than anything p has
// acted on, and logs it if not.
func (s *Service) fresh(ctx context.Context, what, orderID string, orderVersion int, p *domain.Payment) bool {
	if p.IsNewer(orderVersion) {
		return true
	}
	s.ignored(ctx, what, orderID, orderVersion, p)
	return false
}

// ignored logs a stale report, which changes nothing.
func (s *Service) ignored(ctx context.Context, what, orderID string, orderVersion int, p *domain.Payment) {
	s.logger.InfoContext(ctx, "ignored a report that is not newer than the payment", "report", what,
		"order_id", orderID, "report_order_version", orderVersion, "payment_order_version", p.OrderVersion)
}

// reply is an event answering the order service's report about orderID at
// orderVersion: same order and order version, same correlation.
func reply(orderID string, orderVersion int, correlationID string, now time.Time, p events.Payload) events.Event {
	return events.Event{
		ID: uuid.Must(uuid.NewV7()).String(), OrderID: orderID, OrderVersion: orderVersion,
		OccurredAt: now, CorrelationID: correlationID, Payload: p,
	}
}
