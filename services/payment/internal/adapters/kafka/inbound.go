// Package kafka is the payment service's Kafka inbound adapter: it turns the
// order service's events into the application's typed commands. It holds no
// business rule; the application decides.
package kafka

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/inbound"
	"github.com/onceflow/onceflow/services/payment/internal/app"
)

// OrderReports is what the inbound adapter calls: the payment service's use
// cases for the order service's reports (*app.Service implements it).
type OrderReports interface {
	PlacePayment(ctx context.Context, cmd app.PlacePayment) error
	CancelPayment(ctx context.Context, cmd app.CancelPayment) error
}

// OrderEvents returns the consumer handler of the order service's events (the
// orders topic): it decodes each message and calls the matching command of uc,
// in the message's context (which carries the inbox's transaction):
//
//	OrderPlaced     → PlacePayment
//	OrderCancelled  → CancelPayment
//
// Errors are mapped for the consumer stack by package inbound: a message that
// does not decode and an event type not in the table are permanent (poisoned at
// once, with a reason code); an unavailable database and other failures are
// retried.
func OrderEvents(uc OrderReports) func(msg *message.Message) error {
	return inbound.Handler(func(ctx context.Context, e events.Event) error {
		switch p := e.Payload.(type) {
		case events.OrderPlaced:
			return uc.PlacePayment(ctx, app.PlacePayment{OrderID: e.OrderID, Version: e.OrderVersion,
				CustomerID: p.CustomerID, AmountCents: p.Amount.MinorUnits, Currency: p.Amount.Currency, CorrelationID: e.CorrelationID})
		case events.OrderCancelled:
			return uc.CancelPayment(ctx, app.CancelPayment{OrderID: e.OrderID, Version: e.OrderVersion,
				CorrelationID: e.CorrelationID})
		}
		return inbound.Unhandled(e)
	})
}
