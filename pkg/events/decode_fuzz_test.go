package events_test

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/pkg/outbox"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/internal/fuzzseed"
	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
)

// seedPayloads is one payload of every event type, as the services write them.
var seedPayloads = []events.Payload{
	events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 1250, Currency: "EUR"}},
	events.OrderCancelled{Reason: "payment_timeout", Paid: true},
	events.PaymentCompleted{CustomerID: "c-1", AmountCents: contract.MaxAmountCents, Currency: "USD"},
	events.PaymentFailed{Reason: contract.ReasonInsufficientFunds},
	events.PaymentRefunded{AmountCents: 99, Currency: "EUR"},
	events.PaymentRefundFailed{AmountCents: 99, Currency: "JPY", Reason: "account_not_found"},
}

// decodeSeeds are real messages: every event type in every schema version this
// build writes, encoded by Encode, as (payload, message id, correlation id).
func decodeSeeds(t testing.TB) []fuzzseed.Seed {
	t.Helper()
	var seeds []fuzzseed.Seed
	for _, p := range seedPayloads {
		for v := 1; v <= events.NewestVersion(p.EventType()); v++ {
			e := placed()
			e.SchemaVersion, e.Payload = v, p
			msg, err := events.Encode(e)
			if err != nil {
				t.Fatalf("encoding the %s seed: %v", p.EventType(), err)
			}
			seeds = append(seeds, fuzzseed.Seed{
				Name: strings.ReplaceAll(string(p.EventType()), ".", "-") + "-v" + string(rune('0'+v)),
				Args: []any{[]byte(msg.Payload), msg.UUID, middleware.MessageCorrelationID(msg)},
			})
		}
	}
	return seeds
}

// TestDecodeFuzzSeeds keeps testdata/fuzz/FuzzDecode/seed-* equal to what
// Encode writes (ONCEFLOW_FUZZ_SEEDS=write regenerates them).
func TestDecodeFuzzSeeds(t *testing.T) {
	fuzzseed.Sync(t, "FuzzDecode", decodeSeeds(t))
}

// FuzzDecode feeds Decode what a consumer gets from Kafka: any payload bytes,
// any message id (the _watermill_message_uuid header) and any correlation id
// (the correlation_id header). Every input must end in either a permanent
// *DecodeError of one of the four kinds, with a public reason code, or an
// event that passes Validate and survives Encode → Decode unchanged (the
// consumer could write it again, in the version it was read in). A panic is a
// failure by itself. Its seeds are testdata/fuzz/FuzzDecode (see
// TestDecodeFuzzSeeds).
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte, uuid, correlation string) {
		msg := message.NewMessage(uuid, payload)
		if correlation != "" {
			middleware.SetCorrelationID(correlation, msg)
		}
		e, err := events.Decode(msg)
		if err != nil {
			checkDecodeError(t, err)
			if e != (events.Event{}) {
				t.Fatalf("Decode returned an error and an event: %+v", e)
			}
			if len(payload) > events.MaxPayloadBytes && !errors.Is(err, events.ErrMalformed) {
				t.Fatalf("a %d-byte payload was not refused as malformed: %v", len(payload), err)
			}
			return
		}
		if len(payload) > events.MaxPayloadBytes {
			t.Fatalf("a %d-byte payload decoded (max %d)", len(payload), events.MaxPayloadBytes)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("Decode returned an invalid event: %v", err)
		}
		if e.ID != uuid || e.CorrelationID != correlation {
			t.Fatalf("id/correlation = %q/%q, want %q/%q", e.ID, e.CorrelationID, uuid, correlation)
		}
		if e.SchemaVersion < 1 || e.SchemaVersion > events.NewestVersion(e.Type()) {
			t.Fatalf("schema version %d of %s is outside 1..%d", e.SchemaVersion, e.Type(), events.NewestVersion(e.Type()))
		}
		again, err := events.Encode(e)
		if err != nil {
			t.Fatalf("a decoded event does not encode: %v\nevent %+v", err, e)
		}
		back, err := events.Decode(again)
		if err != nil {
			t.Fatalf("a re-encoded event does not decode: %v\npayload %s", err, again.Payload)
		}
		if !back.OccurredAt.Equal(e.OccurredAt) {
			t.Fatalf("occurred_at changed in the round trip: %v → %v", e.OccurredAt, back.OccurredAt)
		}
		back.OccurredAt = e.OccurredAt
		if back != e {
			t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", back, e)
		}
		// The re-encoded form is canonical: encoding it again gives the same bytes.
		third, err := events.Encode(back)
		if err != nil || !bytes.Equal(third.Payload, again.Payload) {
			t.Fatalf("encoding is not stable: %v\n%s\n%s", err, again.Payload, third.Payload)
		}
	})
}

// checkDecodeError fails t unless err is what consumers rely on: a permanent
// *DecodeError of a known kind whose reason code package failure accepts.
func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	var de *events.DecodeError
	if !errors.As(err, &de) || !de.Permanent() {
		t.Fatalf("Decode error %T (%v) is not a permanent *DecodeError", err, err)
	}
	known := false
	for _, kind := range []error{events.ErrMalformed, events.ErrUnknownType, events.ErrUnsupportedVersion, events.ErrInvalid} {
		known = known || errors.Is(err, kind)
	}
	if !known {
		t.Fatalf("Decode error %v is of no known kind", err)
	}
	if code := failure.ReasonCode(err); !failure.ValidReasonCode(code) {
		t.Fatalf("reason code %q of %v is not a valid public code", code, err)
	}
}

// TestDecodeBoundsWork: whatever a producer claims, Decode's work is bounded
// by what a producer may write (MaxPayloadBytes, equal to the outbox's bound):
// a 100 MB payload is refused before it is parsed, and JSON nested far deeper
// than any event (within the size bound) is refused by the parser's depth
// limit, with allocations bounded by the input's size. Allocation is counted
// in bytes (runtime.MemStats), not timed. Not parallel: nothing else allocates
// while it measures.
func TestDecodeBoundsWork(t *testing.T) {
	if events.MaxPayloadBytes != outbox.MaxMessageBytes {
		t.Fatalf("events.MaxPayloadBytes = %d, outbox.MaxMessageBytes = %d: the decoder would refuse what the outbox writes, or parse more",
			events.MaxPayloadBytes, outbox.MaxMessageBytes)
	}
	head := `{"type":"order.placed","schema_version":1,"order_id":"o-1","order_version":1,` +
		`"occurred_at":"2026-11-23T09:00:00Z","data":{"customer_id":"`
	huge := make([]byte, 0, 100<<20)
	huge = append(huge, head...)
	huge = append(huge, bytes.Repeat([]byte("x"), 100<<20-len(head)-3)...)
	huge = append(huge, `"}}`...)
	nested := append([]byte(`{"type":"order.placed","data":`), bytes.Repeat([]byte("["), events.MaxPayloadBytes-100)...)
	tests := []struct {
		name     string
		payload  []byte
		maxAlloc uint64
	}{
		{"a 100 MB payload", huge, 64 << 10},
		{"JSON nested 262,000 deep", nested, 4 * uint64(len(nested))},
	}
	for _, tt := range tests {
		msg := message.NewMessage("id-1", tt.payload)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := events.Decode(msg)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, events.ErrMalformed) {
			t.Errorf("%s: Decode error = %v, want ErrMalformed", tt.name, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > tt.maxAlloc {
			t.Errorf("%s: Decode allocated %d bytes, want at most %d", tt.name, got, tt.maxAlloc)
		}
	}
}
