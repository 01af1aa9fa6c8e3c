package events_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/pkg/events"
)

func placed() events.Event {
	return events.Event{
		ID: "01a207bd-a5cb-79e0-b265-d52a9c102891", OrderID: "o-1", OrderVersion: 1,
		OccurredAt: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), CorrelationID: "req-1",
		Payload: events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 1250, Currency: "EUR"}},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []events.Payload{
		events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 1250, Currency: "EUR"}},
		events.OrderCancelled{Reason: "customer asked", Paid: true},
		events.PaymentCompleted{CustomerID: "c-1", AmountCents: 1, Currency: "USD"},
		events.PaymentFailed{Reason: contract.ReasonInsufficientFunds},
		events.PaymentRefunded{AmountCents: 99, Currency: "EUR"},
		events.PaymentRefunded{AmountCents: contract.MaxAmountCents, Currency: "EUR"}, // the largest order's refund
	}
	for _, p := range tests {
		t.Run(string(p.EventType()), func(t *testing.T) {
			in := placed()
			in.Payload = p
			msg, err := events.Encode(in)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if msg.UUID != in.ID || msg.Metadata.Get(events.MetadataKey) != in.OrderID ||
				middleware.MessageCorrelationID(msg) != "req-1" || msg.Metadata.Get(events.MetadataType) != string(p.EventType()) {
				t.Fatalf("message envelope: uuid=%s metadata=%v", msg.UUID, msg.Metadata)
			}
			out, err := events.Decode(msg)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			in.SchemaVersion = 1
			if out != in {
				t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", out, in)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	valid := `{"type":"order.placed","schema_version":1,"order_id":"o-1","order_version":1,` +
		`"occurred_at":"2026-11-23T09:00:00Z","data":{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}}`
	tests := []struct {
		name    string
		uuid    string
		payload string
		want    error
	}{
		{"not json", "id-1", `\x00\x01garbage`, events.ErrMalformed},
		{"empty", "id-1", ``, events.ErrMalformed},
		{"json array", "id-1", `[1,2]`, events.ErrMalformed},
		{"unknown envelope field", "id-1", strings.Replace(valid, `"type"`, `"extra":1,"type"`, 1), events.ErrMalformed},
		{"unknown data field", "id-1", strings.Replace(valid, `"currency":"EUR"`, `"currency":"EUR","tip":5`, 1), events.ErrMalformed},
		{"wrong type in data", "id-1", strings.Replace(valid, `1250`, `"1250"`, 1), events.ErrMalformed},
		{"trailing data", "id-1", valid + `{}`, events.ErrMalformed},
		{"missing data", "id-1", strings.Replace(valid, `,"data":{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`, ``, 1), events.ErrMalformed},
		{"unknown type", "id-1", strings.Replace(valid, `order.placed`, `order.teleported`, 1), events.ErrUnknownType},
		{"future schema version", "id-1", strings.Replace(valid, `"schema_version":1`, `"schema_version":3`, 1), events.ErrUnsupportedVersion},
		{"schema version zero", "id-1", strings.Replace(valid, `"schema_version":1`, `"schema_version":0`, 1), events.ErrMalformed},
		{"version 1 data under version 2", "id-1", strings.Replace(valid, `"schema_version":1`, `"schema_version":2`, 1), events.ErrMalformed},
		{"negative amount", "id-1", strings.Replace(valid, `1250`, `-5`, 1), events.ErrInvalid},
		{"bad currency", "id-1", strings.Replace(valid, `EUR`, `euro`, 1), events.ErrInvalid},
		{"version zero", "id-1", strings.Replace(valid, `"order_version":1`, `"order_version":0`, 1), events.ErrInvalid},
		{"no order id", "id-1", strings.Replace(valid, `"order_id":"o-1"`, `"order_id":""`, 1), events.ErrInvalid},
		{"no time", "id-1", strings.Replace(valid, `,"occurred_at":"2026-11-23T09:00:00Z"`, ``, 1), events.ErrInvalid},
		{"no message id", "", valid, events.ErrInvalid},
	}
	if _, err := events.Decode(message.NewMessage("id-1", []byte(valid))); err != nil {
		t.Fatalf("the valid base payload does not decode: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := events.Decode(message.NewMessage(tt.uuid, []byte(tt.payload)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode error = %v, want %v", err, tt.want)
			}
			var de *events.DecodeError
			if !errors.As(err, &de) || !de.Permanent() {
				t.Fatalf("Decode error %T is not a permanent *DecodeError", err)
			}
		})
	}
}

func TestEncodeRefusesInvalidEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*events.Event)
	}{
		{"no id", func(e *events.Event) { e.ID = "" }},
		{"no payload", func(e *events.Event) { e.Payload = nil }},
		{"zero amount", func(e *events.Event) {
			e.Payload = events.OrderPlaced{CustomerID: "c", Amount: events.Money{Currency: "EUR"}}
		}},
		{"empty refusal reason", func(e *events.Event) { e.Payload = events.PaymentFailed{} }},
		{"amount over the contract's bound", func(e *events.Event) {
			e.Payload = events.OrderPlaced{CustomerID: "c", Amount: events.Money{MinorUnits: contract.MaxAmountCents + 1, Currency: "EUR"}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := placed()
			tt.mutate(&e)
			if _, err := events.Encode(e); !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("Encode error = %v, want ErrInvalid", err)
			}
		})
	}
}
