package kafka_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/inbound"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/kafka"
	"github.com/onceflow/onceflow/services/payment/internal/app"
)

// commands is a kafka.OrderReports that keeps the last command and fails with err.
type commands struct {
	last any
	err  error
}

func (c *commands) PlacePayment(_ context.Context, cmd app.PlacePayment) error {
	c.last = cmd
	return c.err
}

func (c *commands) CancelPayment(_ context.Context, cmd app.CancelPayment) error {
	c.last = cmd
	return c.err
}

func orderMessage(t *testing.T, version int, p events.Payload) *message.Message {
	t.Helper()
	return orderMessageV(t, 0, version, p)
}

// orderMessageV is orderMessage written in the given schema version (0: the
// default write version).
func orderMessageV(t *testing.T, schemaVersion, version int, p events.Payload) *message.Message {
	t.Helper()
	msg, err := events.Encode(events.Event{ID: "01a207bd-a5cb-79e0-b265-d52a9c102899", SchemaVersion: schemaVersion, OrderID: "o-7", OrderVersion: version,
		OccurredAt: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), CorrelationID: "req-7", Payload: p})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestOrderEvents: OrderPlaced becomes PlacePayment and OrderCancelled
// CancelPayment, with the order, its version and the correlation id (the
// payment's answers carry it on), whichever schema version OrderPlaced was
// written in; a message that does not decode and a payment
// event are permanent and run nothing; an unavailable database is retried.
func TestOrderEvents(t *testing.T) {
	t.Parallel()
	placed := events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 700, Currency: "EUR"}}
	tests := []struct {
		name          string
		msg           func(t *testing.T) *message.Message
		appErr        error
		want          any
		wantPermanent bool
		wantReason    string
	}{
		{name: "placed", msg: func(t *testing.T) *message.Message { return orderMessage(t, 1, placed) },
			want: app.PlacePayment{OrderID: "o-7", Version: 1, CustomerID: "c-1", AmountCents: 700, Currency: "EUR", CorrelationID: "req-7"}},
		{name: "placed, schema version 2", msg: func(t *testing.T) *message.Message { return orderMessageV(t, 2, 1, placed) },
			want: app.PlacePayment{OrderID: "o-7", Version: 1, CustomerID: "c-1", AmountCents: 700, Currency: "EUR", CorrelationID: "req-7"}},
		{name: "placed, a schema version this build does not know", msg: func(t *testing.T) *message.Message {
			m := orderMessageV(t, 2, 1, placed)
			m.Payload = bytes.Replace(m.Payload, []byte(`"schema_version":2`), []byte(`"schema_version":3`), 1)
			return m
		}, wantPermanent: true, wantReason: events.ReasonUnsupportedVersion},
		{name: "cancelled", msg: func(t *testing.T) *message.Message {
			return orderMessage(t, 2, events.OrderCancelled{Reason: "payment_timeout"})
		}, want: app.CancelPayment{OrderID: "o-7", Version: 2, CorrelationID: "req-7"}},
		{name: "malformed", msg: func(*testing.T) *message.Message {
			m := message.NewMessage("id-1", []byte(`{"type":"order.placed"}`))
			middleware.SetCorrelationID("req-7", m)
			return m
		}, wantPermanent: true, wantReason: failure.ReasonInvalidEvent},
		{name: "a payment event", msg: func(t *testing.T) *message.Message {
			return orderMessage(t, 1, events.PaymentFailed{Reason: contract.ReasonUnknownCustomer})
		}, wantPermanent: true, wantReason: inbound.ReasonUnhandledEventType},
		{name: "database unavailable", msg: func(t *testing.T) *message.Message { return orderMessage(t, 1, placed) },
			appErr: &apperr.Error{Code: apperr.CodeUnavailable}, wantReason: failure.ReasonHandlerFailed,
			want: app.PlacePayment{OrderID: "o-7", Version: 1, CustomerID: "c-1", AmountCents: 700, Currency: "EUR", CorrelationID: "req-7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := commands{err: tt.appErr}
			err := kafka.OrderEvents(&c)(tt.msg(t))
			if c.last != tt.want {
				t.Fatalf("command %+v, want %+v", c.last, tt.want)
			}
			if (err != nil) != (tt.wantReason != "") || failure.IsPermanent(err) != tt.wantPermanent {
				t.Fatalf("error %v (permanent %v), want permanent %v", err, failure.IsPermanent(err), tt.wantPermanent)
			}
			if err != nil && failure.ReasonCode(err) != tt.wantReason {
				t.Fatalf("reason code %q, want %q", failure.ReasonCode(err), tt.wantReason)
			}
		})
	}
}
