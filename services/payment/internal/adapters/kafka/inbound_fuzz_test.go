package kafka_test

import (
	"errors"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/fuzzseed"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/inbound"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/kafka"
	"github.com/onceflow/onceflow/services/payment/internal/app"
)

// orderEventSeeds are the records the payment service consumes, as the order
// service's producer writes them: OrderPlaced in both schema versions and
// OrderCancelled, as (value, key, headers).
func orderEventSeeds(t testing.TB) []fuzzseed.Seed {
	t.Helper()
	placed := events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 700, Currency: "EUR"}}
	tests := []struct {
		name    string
		version int
		p       events.Payload
	}{
		{"order-placed-v1", 1, placed},
		{"order-placed-v2", 2, placed},
		{"order-cancelled", 1, events.OrderCancelled{Reason: "payment_timeout", Paid: true}},
	}
	var seeds []fuzzseed.Seed
	for _, tt := range tests {
		msg, err := events.Encode(events.Event{ID: "01a207bd-a5cb-79e0-b265-d52a9c102899", SchemaVersion: tt.version, OrderID: "o-7",
			OrderVersion: 2, OccurredAt: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), CorrelationID: "req-7", Payload: tt.p})
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, fuzzseed.KafkaSeed(t, tt.name, "orders", msg))
	}
	return seeds
}

// TestOrderEventsFuzzSeeds keeps testdata/fuzz/FuzzOrderEvents/seed-* equal to
// what the order service writes (ONCEFLOW_FUZZ_SEEDS=write regenerates them).
func TestOrderEventsFuzzSeeds(t *testing.T) {
	fuzzseed.Sync(t, "FuzzOrderEvents", orderEventSeeds(t))
}

// FuzzOrderEvents gives the payment service's inbound adapter any record of
// the orders topic, unmarshaled as its subscriber does. The properties: no
// panic; the adapter runs exactly the command of the decoded event (compared
// with events.Decode of the same message: OrderPlaced → PlacePayment with its
// order, version, customer, amount, currency and correlation id;
// OrderCancelled → CancelPayment), or nothing and a permanent error whose
// reason code is invalid_event, unsupported_version or unhandled_event_type.
func FuzzOrderEvents(f *testing.F) {
	f.Fuzz(func(t *testing.T, value, key []byte, headers string) {
		msg, ok := fuzzseed.Consumed("orders", value, key, headers)
		if !ok {
			return
		}
		c := commands{}
		err := kafka.OrderEvents(&c)(msg)
		e, decodeErr := events.Decode(msg)

		var want any
		if decodeErr == nil {
			switch p := e.Payload.(type) {
			case events.OrderPlaced:
				want = app.PlacePayment{OrderID: e.OrderID, Version: e.OrderVersion, CustomerID: p.CustomerID,
					AmountCents: p.Amount.MinorUnits, Currency: p.Amount.Currency, CorrelationID: e.CorrelationID}
			case events.OrderCancelled:
				want = app.CancelPayment{OrderID: e.OrderID, Version: e.OrderVersion, CorrelationID: e.CorrelationID}
			}
		}
		if c.last != want {
			t.Fatalf("command %+v, want %+v (decode error %v)", c.last, want, decodeErr)
		}
		if want != nil {
			if err != nil {
				t.Fatalf("the command succeeded, the handler failed: %v", err)
			}
			return
		}
		if !failure.IsPermanent(err) {
			t.Fatalf("a message the service cannot use is not permanent (it would be retried forever): %v", err)
		}
		code := failure.ReasonCode(err)
		switch {
		case decodeErr != nil && !errors.Is(err, decodeErr.(*events.DecodeError).Kind): //nolint:errorlint // decodeErr is the decoder's own return value, not wrapped
			t.Fatalf("error %v does not wrap the decoder's %v", err, decodeErr)
		case decodeErr != nil && code != failure.ReasonCode(decodeErr):
			t.Fatalf("reason code %q, the decoder's is %q", code, failure.ReasonCode(decodeErr))
		case decodeErr == nil && code != inbound.ReasonUnhandledEventType:
			t.Fatalf("a %s event: reason code %q, want %q", e.Type(), code, inbound.ReasonUnhandledEventType)
		}
	})
}
