// Package app holds the payment service's use cases: charge or refuse an order
// when it is placed. Storage goes through the Payments port; events leave through
// the outbox that Payments writes in the same transaction as the money moves.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/services/payment/internal/domain"
)

// Payments is the repository port.
type Payments interface {
	// Update loads, with row locks, the order's payment (empty if none) and the
	// account of the payment's customer, or of customerID for a new payment (nil
	// if there is no such account); calls fn; and if fn returns nil stores the
	// payment, the account, the payment's new ledger movements and the events fn
	// returns, in one transaction (joining the one ctx carries, if any). fn's error
	// aborts everything and is returned unchanged.
	Update(ctx context.Context, orderID, customerID string, fn func(p *domain.Payment, a *domain.Account) ([]events.Event, error)) error
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

// HandleOrderEvent acts on an event of the order service. OrderPlaced charges the
// customer (emitting PaymentCompleted) or refuses (PaymentFailed with a reason).
// OrderCancelled refunds what was charged (emitting PaymentRefunded; if the
// account no longer exists nothing moves and it emits PaymentRefundFailed with
// the reason) or, if nothing was charged yet, remembers the cancellation so that a late OrderPlaced
// is never charged.
// An event that is not newer than what the payment has acted on is ignored and
// returns nil: a duplicate can never charge twice. An event type this service
// does not handle is a permanent error.
func (s *Service) HandleOrderEvent(ctx context.Context, e events.Event) error {
	switch p := e.Payload.(type) {
	case events.OrderPlaced:
		return s.orderPlaced(ctx, e, p)
	case events.OrderCancelled:
		return s.orderCancelled(ctx, e)
	default:
		return messaging.PermanentCode("unhandled_event_type", fmt.Errorf("the payment service does not handle %s events", e.Type()))
	}
}

func (s *Service) orderCancelled(ctx context.Context, e events.Event) error {
	return s.payments.Update(ctx, e.OrderID, "", func(p *domain.Payment, a *domain.Account) ([]events.Event, error) {
		if !s.fresh(ctx, e, p) {
			return nil, nil
		}
		now := s.Now()
		out := p.Cancel(e.OrderVersion, a, now)
		switch {
		case out.RefundedCents > 0:
			return []events.Event{reply(e, now, events.PaymentRefunded{AmountCents: out.RefundedCents, Currency: p.Currency})}, nil
		case out.UnrefundedCents > 0:
			s.logger.WarnContext(ctx, "could not refund a cancelled order; settle it by hand", "order_id", e.OrderID,
				"customer_id", p.CustomerID, "amount_cents", out.UnrefundedCents, "currency", p.Currency, "reason", out.FailReason)
			return []events.Event{reply(e, now, events.PaymentRefundFailed{
				AmountCents: out.UnrefundedCents, Currency: p.Currency, Reason: out.FailReason})}, nil
		}
		return nil, nil
	})
}

// fresh reports whether e is newer than anything p has acted on, and logs it if not.
func (s *Service) fresh(ctx context.Context, e events.Event, p *domain.Payment) bool {
	if p.IsNewer(e.OrderVersion) {
		return true
	}
	s.logger.InfoContext(ctx, "ignored event that is not newer than the payment", "event_id", e.ID,
		"type", e.Type(), "order_id", e.OrderID, "event_order_version", e.OrderVersion,
		"payment_order_version", p.OrderVersion)
	return false
}

func (s *Service) orderPlaced(ctx context.Context, e events.Event, placed events.OrderPlaced) error {
	return s.payments.Update(ctx, e.OrderID, placed.CustomerID, func(p *domain.Payment, a *domain.Account) ([]events.Event, error) {
		if !s.fresh(ctx, e, p) {
			return nil, nil
		}
		now := s.Now()
		var out events.Payload
		if p.Place(e.OrderVersion, placed.CustomerID, placed.AmountCents, placed.Currency, a, now) {
			out = events.PaymentCompleted{CustomerID: placed.CustomerID, AmountCents: placed.AmountCents, Currency: placed.Currency}
		} else {
			out = events.PaymentFailed{Reason: p.Reason}
		}
		return []events.Event{reply(e, now, out)}, nil
	})
}

// reply is an event answering e: same order and order version, same correlation.
func reply(e events.Event, now time.Time, p events.Payload) events.Event {
	return events.Event{
		ID: uuid.Must(uuid.NewV7()).String(), OrderID: e.OrderID, OrderVersion: e.OrderVersion,
		OccurredAt: now, CorrelationID: e.CorrelationID, Payload: p,
	}
}
