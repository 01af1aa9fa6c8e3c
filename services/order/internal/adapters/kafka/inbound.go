package kafka

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/inbound"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// PaymentReports is what the inbound adapter calls: the order service's use
// cases for the payment service's reports (*app.Service implements it).
type PaymentReports interface {
	ConfirmPayment(ctx context.Context, cmd app.ConfirmPayment) error
	FailPayment(ctx context.Context, cmd app.FailPayment) error
	RecordRefund(ctx context.Context, cmd app.RecordRefund) error
	RecordRefundFailure(ctx context.Context, cmd app.RecordRefundFailure) error
}

// PaymentEvents returns the consumer handler of the payment service's events
// (the payments topic): it decodes each message and calls the matching command
// of uc, in the message's context (which carries the inbox's transaction):
//
//	PaymentCompleted     → ConfirmPayment
//	PaymentFailed        → FailPayment
//	PaymentRefunded      → RecordRefund
//	PaymentRefundFailed  → RecordRefundFailure
//
// Errors are mapped for the consumer stack by package inbound: a message that
// does not decode, an event type not in the table, and an invalid, not-found or
// conflicting report are permanent (poisoned at once, with a reason code); an
// unavailable database and other failures are retried.
func PaymentEvents(uc PaymentReports) func(msg *message.Message) error {
	return inbound.Handler(func(ctx context.Context, e events.Event) error {
		switch p := e.Payload.(type) {
		case events.PaymentCompleted:
			return uc.ConfirmPayment(ctx, app.ConfirmPayment{OrderID: e.OrderID, Version: e.OrderVersion,
				AmountCents: p.AmountCents, Currency: p.Currency})
		case events.PaymentFailed:
			return uc.FailPayment(ctx, app.FailPayment{OrderID: e.OrderID, Version: e.OrderVersion, Reason: p.Reason})
		case events.PaymentRefunded:
			return uc.RecordRefund(ctx, app.RecordRefund{OrderID: e.OrderID, Version: e.OrderVersion})
		case events.PaymentRefundFailed:
			return uc.RecordRefundFailure(ctx, app.RecordRefundFailure{OrderID: e.OrderID, Version: e.OrderVersion,
				AmountCents: p.AmountCents, Currency: p.Currency, Reason: p.Reason, CorrelationID: e.CorrelationID})
		}
		return inbound.Unhandled(e)
	})
}
