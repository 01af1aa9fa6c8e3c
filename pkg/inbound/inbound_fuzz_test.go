package inbound_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/internal/fuzzseed"
	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/inbound"
	"github.com/onceflow/onceflow/pkg/msgtrace"
)

// kafkaSeeds are real Kafka records: an event of each type, encoded by
// events.Encode and turned into a record by the producers' marshaler (key and
// headers as Kafka carries them), with a W3C traceparent as the forwarder
// adds one, as (value, key, headers). headers is one "name: value" per line.
func kafkaSeeds(t testing.TB) []fuzzseed.Seed {
	t.Helper()
	payloads := []events.Payload{
		events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 1250, Currency: "EUR"}},
		events.OrderCancelled{Reason: "payment_timeout"},
		events.PaymentCompleted{CustomerID: "c-1", AmountCents: 1250, Currency: "EUR"},
		events.PaymentFailed{Reason: contract.ReasonInsufficientFunds},
		events.PaymentRefunded{AmountCents: 1250, Currency: "EUR"},
		events.PaymentRefundFailed{AmountCents: 1250, Currency: "EUR", Reason: "account_not_found"},
	}
	var seeds []fuzzseed.Seed
	for _, p := range payloads {
		msg, err := events.Encode(events.Event{ID: "01a207bd-a5cb-79e0-b265-d52a9c102891", OrderID: "o-1", OrderVersion: 2,
			OccurredAt: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), CorrelationID: "req-1", Payload: p})
		if err != nil {
			t.Fatal(err)
		}
		msg.Metadata.Set(msgtrace.MetadataTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		seeds = append(seeds, fuzzseed.KafkaSeed(t, strings.ReplaceAll(string(p.EventType()), ".", "-"), "orders", msg))
	}
	return seeds
}

// TestHandlerFuzzSeeds keeps testdata/fuzz/FuzzHandler/seed-* equal to what
// the producers write (ONCEFLOW_FUZZ_SEEDS=write regenerates them).
func TestHandlerFuzzSeeds(t *testing.T) {
	fuzzseed.Sync(t, "FuzzHandler", kafkaSeeds(t))
}

// FuzzHandler drives a consumer's first steps with any Kafka record: the
// subscriber's unmarshaler (the one every consumer here uses) turns value, key
// and headers into a message, and inbound.Handler decodes it and dispatches.
// The properties: no panic; a record either reaches dispatch once, as a valid
// event whose id and correlation id are the record's headers, or ends in a
// permanent error with a valid public reason code, without dispatch (so the
// consumer stack poisons it at once instead of retrying it forever).
func FuzzHandler(f *testing.F) {
	f.Fuzz(func(t *testing.T, value, key []byte, headers string) {
		msg, ok := fuzzseed.Consumed("orders", value, key, headers)
		if !ok {
			return // the subscriber logs it; nothing of ours runs
		}
		var got []events.Event
		h := inbound.Handler(func(_ context.Context, e events.Event) error {
			got = append(got, e)
			return nil
		})
		err := h(msg)
		switch {
		case err != nil && len(got) > 0:
			t.Fatalf("dispatched %+v and failed: %v", got, err)
		case err != nil:
			if !failure.IsPermanent(err) {
				t.Fatalf("a message that does not decode is not permanent (it would be retried forever): %v", err)
			}
			if code := failure.ReasonCode(err); !failure.ValidReasonCode(code) ||
				(code != failure.ReasonInvalidEvent && code != events.ReasonUnsupportedVersion) {
				t.Fatalf("reason code %q of %v", code, err)
			}
			var de *events.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("the decoder's error is lost: %v", err)
			}
		case len(got) != 1:
			t.Fatalf("dispatched %d times, want once", len(got))
		default:
			e := got[0]
			if err := e.Validate(); err != nil {
				t.Fatalf("dispatched an invalid event: %v", err)
			}
			if e.ID != msg.UUID || e.CorrelationID != middleware.MessageCorrelationID(msg) {
				t.Fatalf("event id/correlation %q/%q, message's %q/%q", e.ID, e.CorrelationID, msg.UUID, middleware.MessageCorrelationID(msg))
			}
		}
	})
}
