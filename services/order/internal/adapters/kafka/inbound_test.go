package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/inbound"
	"github.com/onceflow/onceflow/services/order/internal/adapters/kafka"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// recorder is a kafka.PaymentReports that records the commands it gets and
// answers with err.
type recorder struct {
	got []any
	ctx context.Context
	err error
}

func (r *recorder) record(ctx context.Context, cmd any) error {
	r.got, r.ctx = append(r.got, cmd), ctx
	return r.err
}

func (r *recorder) ConfirmPayment(ctx context.Context, cmd app.ConfirmPayment) error {
	return r.record(ctx, cmd)
}
func (r *recorder) FailPayment(ctx context.Context, cmd app.FailPayment) error {
	return r.record(ctx, cmd)
}
func (r *recorder) RecordRefund(ctx context.Context, cmd app.RecordRefund) error {
	return r.record(ctx, cmd)
}
func (r *recorder) RecordRefundFailure(ctx context.Context, cmd app.RecordRefundFailure) error {
	return r.record(ctx, cmd)
}

// message encodes an event about order o-1 at version 3 with payload p.
func encode(t *testing.T, p events.Payload) *message.Message {
	t.Helper()
	msg, err := events.Encode(events.Event{ID: "01a207bd-a5cb-79e0-b265-d52a9c102891", OrderID: "o-1", OrderVersion: 3, CorrelationID: "req-7",
		OccurredAt: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), Payload: p})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

type ctxKey struct{}

// TestPaymentEventsBecomeCommands: each payment event type becomes its typed
// command, with the order, its version and the payload's fields, in the
// message's context (which carries the inbox's transaction).
func TestPaymentEventsBecomeCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		payload events.Payload
		want    any
	}{
		{events.PaymentCompleted{CustomerID: "c-1", AmountCents: 1250, Currency: "EUR"},
			app.ConfirmPayment{OrderID: "o-1", Version: 3, AmountCents: 1250, Currency: "EUR"}},
		{events.PaymentFailed{Reason: contract.ReasonInsufficientFunds},
			app.FailPayment{OrderID: "o-1", Version: 3, Reason: contract.ReasonInsufficientFunds}},
		{events.PaymentRefunded{AmountCents: 1250, Currency: "EUR"},
			app.RecordRefund{OrderID: "o-1", Version: 3}},
		{events.PaymentRefundFailed{AmountCents: 1250, Currency: "EUR", Reason: contract.ReasonAccountNotFound},
			app.RecordRefundFailure{OrderID: "o-1", Version: 3, AmountCents: 1250, Currency: "EUR", Reason: contract.ReasonAccountNotFound,
				CorrelationID: "req-7"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.payload.EventType()), func(t *testing.T) {
			t.Parallel()
			var r recorder
			msg := encode(t, tt.payload)
			msg.SetContext(context.WithValue(context.Background(), ctxKey{}, "inbox tx"))
			if err := kafka.PaymentEvents(&r)(msg); err != nil {
				t.Fatal(err)
			}
			if len(r.got) != 1 || r.got[0] != tt.want {
				t.Fatalf("commands %+v, want [%+v]", r.got, tt.want)
			}
			if r.ctx.Value(ctxKey{}) != "inbox tx" {
				t.Fatal("the command did not run in the message's context")
			}
		})
	}
}

// TestPaymentEventsErrors: what cannot succeed on a retry is permanent, with a
// public reason code; what may succeed later is retried. No command runs for a
// message that does not decode or an event the order service does not consume.
func TestPaymentEventsErrors(t *testing.T) {
	t.Parallel()
	completed := events.PaymentCompleted{CustomerID: "c-1", AmountCents: 1250, Currency: "EUR"}
	tests := []struct {
		name          string
		msg           func(t *testing.T) *message.Message
		appErr        error
		wantCommands  int
		wantPermanent bool
		wantReason    string
	}{
		{"malformed", func(*testing.T) *message.Message { return message.NewMessage("id-1", []byte("{not json")) },
			nil, 0, true, failure.ReasonInvalidEvent},
		{"breaks the contract", func(*testing.T) *message.Message {
			return message.NewMessage("id-1", []byte(`{"type":"payment.failed","schema_version":1,"order_id":"o-1",`+
				`"order_version":0,"occurred_at":"2026-11-23T09:00:00Z","data":{"reason":"x"}}`))
		}, nil, 0, true, failure.ReasonInvalidEvent},
		{"an order event", func(t *testing.T) *message.Message {
			return encode(t, events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 1, Currency: "EUR"}})
		}, nil, 0, true, inbound.ReasonUnhandledEventType},
		{"unknown order", func(t *testing.T) *message.Message { return encode(t, completed) },
			&apperr.Error{Code: apperr.CodeNotFound, Reason: app.ReasonUnknownOrder}, 1, true, app.ReasonUnknownOrder},
		{"inconsistent", func(t *testing.T) *message.Message { return encode(t, completed) },
			&apperr.Error{Code: apperr.CodeConflict, Reason: app.ReasonInconsistentEvent}, 1, true, app.ReasonInconsistentEvent},
		{"payment mismatch", func(t *testing.T) *message.Message { return encode(t, completed) },
			&apperr.Error{Code: apperr.CodeInvalid, Reason: app.ReasonPaymentMismatch}, 1, true, app.ReasonPaymentMismatch},
		{"database unavailable", func(t *testing.T) *message.Message { return encode(t, completed) },
			&apperr.Error{Code: apperr.CodeUnavailable}, 1, false, failure.ReasonHandlerFailed},
		{"internal", func(t *testing.T) *message.Message { return encode(t, completed) },
			errors.New("boom"), 1, false, failure.ReasonHandlerFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := recorder{err: tt.appErr}
			err := kafka.PaymentEvents(&r)(tt.msg(t))
			if err == nil {
				t.Fatal("no error")
			}
			if len(r.got) != tt.wantCommands {
				t.Fatalf("%d commands ran, want %d", len(r.got), tt.wantCommands)
			}
			if failure.IsPermanent(err) != tt.wantPermanent {
				t.Fatalf("IsPermanent(%v) = %v, want %v", err, !tt.wantPermanent, tt.wantPermanent)
			}
			if got := failure.ReasonCode(err); got != tt.wantReason {
				t.Fatalf("reason code %q, want %q", got, tt.wantReason)
			}
			if tt.appErr != nil && !errors.Is(err, tt.appErr) {
				t.Fatalf("error %v does not wrap the application's %v", err, tt.appErr)
			}
		})
	}
}
