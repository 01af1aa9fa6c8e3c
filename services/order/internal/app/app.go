// Package app holds the order service's use cases: place, cancel and read
// orders, apply what the payment service reports (payments.go), record and read
// the order timeline (timeline.go). It talks to storage through the Orders and
// Timeline ports and never to Kafka or HTTP.
//
// Inbound, the use cases take typed commands (PlaceOrder, ConfirmPayment, ...)
// that the adapters build from requests and events; they never see a wire type.
// Outbound, a use case builds the events (pkg/events) its change causes and
// hands them to the Orders port, which writes them to the outbox in the same
// transaction as the order: those events are the contract the outbox stores.
//
// Every error is an *apperr.Error (or counts as apperr.CodeInternal); the
// adapters map its code once, at their edge.
package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// Orders is the order repository port.
type Orders interface {
	// Add stores a new order and its events in one transaction.
	Add(ctx context.Context, o *domain.Order, evts ...events.Event) error
	// Update loads the order with a row lock, calls fn, and if fn returns nil
	// stores the changed order and the events fn returns, in one transaction
	// (joining the transaction ctx carries, if any). fn's error aborts the
	// transaction and is returned unchanged. An unknown id gives domain.ErrNotFound.
	Update(ctx context.Context, id string, fn func(o *domain.Order) ([]events.Event, error)) error
	// Get returns the order, or domain.ErrNotFound.
	Get(ctx context.Context, id string) (*domain.Order, error)
	// ListByCustomer returns up to limit orders of the customer, newest first.
	ListByCustomer(ctx context.Context, customerID string, limit int) ([]*domain.Order, error)
	// PendingBefore returns the ids of up to limit orders that are PENDING and were
	// created before t, oldest first.
	PendingBefore(ctx context.Context, t time.Time, limit int) ([]string, error)

	// AddOnce is Add guarded by an idempotency key, all in one transaction. It
	// first claims the key: if no unexpired key (scope, key) is stored it inserts
	// one, whose row lock marks the key in flight until the transaction ends, then
	// stores o and evts and records key.Render(o) as the key's answer, and returns
	// (nil, nil).
	// If the key is stored and unexpired it writes nothing and returns it. If
	// another transaction holds the key it returns ErrKeyInFlight at once,
	// without waiting. When the transaction fails, nothing of it (key included)
	// remains.
	AddOnce(ctx context.Context, key KeyClaim, o *domain.Order, evts ...events.Event) (*StoredKey, error)
	// UpdateOnce is Update guarded by an idempotency key, with AddOnce's rules:
	// the key is claimed before the order is locked, and the answer key.Render
	// gives for the order as fn left it is recorded with the key (also when fn
	// changed nothing). fn's error rolls the key back with everything else.
	UpdateOnce(ctx context.Context, key KeyClaim, id string, fn func(o *domain.Order) ([]events.Event, error)) (*StoredKey, error)
	// DeleteExpiredKeys deletes up to limit idempotency keys that expired at or
	// before t, skipping any a transaction holds, and returns how many it deleted.
	DeleteExpiredKeys(ctx context.Context, t time.Time, limit int) (int, error)
}

// Service implements the use cases.
type Service struct {
	orders   Orders
	timeline Timeline
	logger   *slog.Logger
	// Now is the clock; tests may replace it.
	Now func() time.Time
	// KeyTTL is how long an idempotency key is remembered (DefaultKeyTTL unless
	// the caller sets it before use).
	KeyTTL time.Duration
	// EventVersions is the schema version the service writes per event type
	// (events.Versions; a type not in it is written in its default write
	// version). Set it before use; move a type to a new version only once every
	// consumer decodes it.
	EventVersions events.Versions
	// Outcomes, if not nil, is told each saga outcome once it committed.
	// Set it before use.
	Outcomes Outcomes
	// AfterCommit, if set, runs fn once the transaction ctx carries commits
	// (at once if it carries none; never if it rolls back): the wiring's
	// sqldb.OnCommit. Outcomes are told through it, so that a dry run (a
	// transaction always rolled back) tells none. Set it before use.
	AfterCommit func(ctx context.Context, fn func())
	// Diagnosis is what Diagnose reads. Set it before use.
	Diagnosis DiagnosisConfig
}

// New returns a Service storing orders in orders and reading timelines from timeline.
func New(orders Orders, timeline Timeline, logger *slog.Logger) *Service {
	return &Service{orders: orders, timeline: timeline, logger: logger, Now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		KeyTTL: DefaultKeyTTL}
}

// NewID returns a new time-ordered id (UUIDv7) for orders and events.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// PlaceOrder is the input of Service.PlaceOrder.
type PlaceOrder struct {
	CustomerID    string
	AmountCents   int64
	Currency      string
	CorrelationID string
	// Idempotency, if not nil, makes a retry of this request safe.
	Idempotency *Idempotency
}

// PlaceOrder validates the command and stores a PENDING order together with its
// OrderPlaced event. When it returns nil the order is durable and its event will
// reach Kafka, whatever crashes afterwards. With an idempotency key, a request
// that repeats one that already took effect stores nothing and returns the
// answer that request got (Replayed). Errors: CodeInvalidKey, apperr.CodeInvalid
// (with Fields), CodeKeyReused (the key was used for another request),
// CodeKeyInFlight (the first request with the key has not finished),
// apperr.CodeUnavailable (database down: nothing was stored or, if the connection broke
// during commit, the outcome is unknown: retry with the same key), apperr.CodeInternal.
func (s *Service) PlaceOrder(ctx context.Context, cmd PlaceOrder) (Result, error) {
	now := s.Now()
	claim, err := s.claim(cmd.Idempotency, now)
	if err != nil {
		return Result{}, err
	}
	o, err := domain.NewOrder(NewID(), cmd.CustomerID, cmd.AmountCents, cmd.Currency, now)
	if err != nil {
		var ve *domain.ValidationError
		if errors.As(err, &ve) {
			return Result{}, &apperr.Error{Code: apperr.CodeInvalid, Message: "the order is not valid", Fields: ve.Fields, Err: err}
		}
		return Result{}, err
	}
	placed := s.event(o, now, cmd.CorrelationID, events.OrderPlaced{
		CustomerID: o.CustomerID, Amount: events.Money{MinorUnits: o.AmountCents, Currency: o.Currency},
	})
	if claim == nil {
		if err := s.orders.Add(ctx, o, placed); err != nil {
			return Result{}, err
		}
		return Result{Order: o}, nil
	}
	stored, err := s.orders.AddOnce(ctx, *claim, o, placed)
	return settle(claim, stored, o, err)
}

// Order returns one order. Errors: apperr.CodeNotFound, CodeUnavailable, CodeInternal.
func (s *Service) Order(ctx context.Context, id string) (*domain.Order, error) {
	o, err := s.orders.Get(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, notFound(id, err)
	}
	return o, err
}

// MaxListed bounds how many orders OrdersOfCustomer returns.
const MaxListed = 100

// OrdersOfCustomer returns the customer's newest orders (at most MaxListed).
// Errors: apperr.CodeInvalid for an empty customer id or one no order can have
// (not contract.ValidID, the rule NewOrder applies), CodeUnavailable, CodeInternal.
func (s *Service) OrdersOfCustomer(ctx context.Context, customerID string) ([]*domain.Order, error) {
	if customerID == "" {
		return nil, &apperr.Error{Code: apperr.CodeInvalid, Message: "customer_id is required",
			Fields: map[string]string{"customer_id": "is required"}}
	}
	if !contract.ValidID(customerID) {
		return nil, &apperr.Error{Code: apperr.CodeInvalid, Message: "customer_id " + contract.IDRule,
			Fields: map[string]string{"customer_id": contract.IDRule}}
	}
	return s.orders.ListByCustomer(ctx, customerID, MaxListed)
}

// CancelOrder cancels an order on the customer's request. A PENDING order is
// cancelled at once; a CONFIRMED one is cancelled and refunded by the payment
// service (the order shows refunded: true once that is done). Both emit
// OrderCancelled in the same transaction. Cancelling a CANCELLED order changes
// nothing and returns it. With an idempotency key (idem not nil), a request that
// repeats one that already took effect changes nothing and returns the answer
// that request got (Replayed). Errors: CodeInvalidKey, apperr.CodeNotFound,
// CodeKeyReused, CodeKeyInFlight, apperr.CodeUnavailable, CodeInternal.
func (s *Service) CancelOrder(ctx context.Context, id, correlationID string, idem *Idempotency) (Result, error) {
	claim, err := s.claim(idem, s.Now())
	if err != nil {
		return Result{}, err
	}
	var out *domain.Order
	var outcome string
	fn := observed(func(o *domain.Order) ([]events.Event, error) {
		out = o
		return s.cancel(o, domain.ReasonCancelledByCustomer, correlationID), nil
	}, &outcome)
	var stored *StoredKey
	if claim == nil {
		err = s.orders.Update(ctx, id, fn)
	} else {
		stored, err = s.orders.UpdateOnce(ctx, *claim, id, fn)
	}
	s.tellOutcome(ctx, outcome, err)
	if errors.Is(err, domain.ErrNotFound) {
		return Result{}, notFound(id, err)
	}
	if claim == nil {
		return Result{Order: out}, err
	}
	return settle(claim, stored, out, err)
}

// cancel cancels o and returns its OrderCancelled event, or nothing if o was
// already cancelled.
func (s *Service) cancel(o *domain.Order, reason, correlationID string) []events.Event {
	now := s.Now()
	if !o.Cancel(reason, now) {
		return nil
	}
	return []events.Event{s.event(o, now, correlationID, events.OrderCancelled{Reason: reason, Paid: o.Paid})}
}

// CancelStalePending cancels, with reason payment_timeout, the orders that have
// been PENDING for longer than timeout (at most limit per call) and returns how
// many it cancelled. Safe with several replicas: each order is re-checked under
// its row lock, so only one replica cancels it and the others see it is no longer
// PENDING.
func (s *Service) CancelStalePending(ctx context.Context, timeout time.Duration, limit int) (int, error) {
	cutoff := s.Now().Add(-timeout)
	ids, err := s.orders.PendingBefore(ctx, cutoff, limit)
	if err != nil {
		return 0, err
	}
	cancelled := 0
	for _, id := range ids {
		var outcome string
		err := s.orders.Update(ctx, id, observed(func(o *domain.Order) ([]events.Event, error) {
			if !o.PendingSince(cutoff) {
				return nil, nil // paid, refused or cancelled meanwhile
			}
			cancelled++
			return s.cancel(o, domain.ReasonPaymentTimeout, "payment-timeout:"+o.ID), nil
		}, &outcome))
		s.tellOutcome(ctx, outcome, err)
		if err != nil && !errors.Is(err, domain.ErrNotFound) {
			return cancelled, err
		}
	}
	return cancelled, nil
}

// event wraps a payload produced for order o's current version.
func (s *Service) event(o *domain.Order, now time.Time, correlationID string, p events.Payload) events.Event {
	return events.Event{
		ID: NewID(), SchemaVersion: s.EventVersions.Of(p.EventType()), OrderID: o.ID, OrderVersion: o.Version,
		OccurredAt: now, CorrelationID: correlationID, Payload: p,
	}
}
