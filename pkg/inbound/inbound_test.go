package inbound_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/inbound"
)

// TestConsumerError: the one mapping of application error codes to the
// consumer stack. Codes that a retry cannot fix are permanent, with the error's
// reason (or invalid_event) as reason code; the rest, and foreign errors, pass
// unchanged, so that the stack retries them and recognises an outage.
func TestConsumerError(t *testing.T) {
	t.Parallel()
	outage := fmt.Errorf("dial: %w", context.DeadlineExceeded)
	tests := []struct {
		name          string
		err           error
		wantPermanent bool
		wantReason    string
	}{
		{"invalid with a reason", &apperr.Error{Code: apperr.CodeInvalid, Reason: "payment_mismatch"}, true, "payment_mismatch"},
		{"invalid without a reason", &apperr.Error{Code: apperr.CodeInvalid}, true, failure.ReasonInvalidEvent},
		{"not found", &apperr.Error{Code: apperr.CodeNotFound, Reason: "unknown_order"}, true, "unknown_order"},
		{"conflict", fmt.Errorf("wrapped: %w", &apperr.Error{Code: apperr.CodeConflict, Reason: "inconsistent_event"}), true, "inconsistent_event"},
		{"unavailable", &apperr.Error{Code: apperr.CodeUnavailable, Err: outage}, false, ""},
		{"internal", &apperr.Error{Code: apperr.CodeInternal}, false, failure.ReasonHandlerFailed},
		{"a service's own code", &apperr.Error{Code: "idempotency_key_in_flight"}, false, failure.ReasonHandlerFailed},
		{"not an application error", errors.New("boom"), false, failure.ReasonHandlerFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := inbound.ConsumerError(tt.err)
			if !errors.Is(got, tt.err) {
				t.Fatalf("ConsumerError(%v) = %v, which does not wrap it", tt.err, got)
			}
			if failure.IsPermanent(got) != tt.wantPermanent {
				t.Fatalf("permanent = %v, want %v", !tt.wantPermanent, tt.wantPermanent)
			}
			if tt.wantReason == "" {
				if !failure.IsUnavailable(got) {
					t.Fatal("an outage is no longer recognisable as one")
				}
				return
			}
			if code := failure.ReasonCode(got); code != tt.wantReason {
				t.Fatalf("reason code %q, want %q", code, tt.wantReason)
			}
		})
	}
	if inbound.ConsumerError(nil) != nil {
		t.Fatal("ConsumerError(nil) is not nil")
	}
}

// TestHandler: a message that does not decode never reaches dispatch and is
// permanent (invalid_event, or unsupported_version for a schema version this
// build does not decode); one that decodes reaches it with the message's
// context and the decoded event, and dispatch's error is mapped.
func TestHandler(t *testing.T) {
	t.Parallel()
	var got []events.Event
	h := inbound.Handler(func(ctx context.Context, e events.Event) error {
		got = append(got, e)
		if ctx.Value(ctxKey{}) != "tx" {
			return errors.New("not the message's context")
		}
		return &apperr.Error{Code: apperr.CodeNotFound, Reason: "unknown_order"}
	})
	bad := message.NewMessage("id-1", []byte("{"))
	if err := h(bad); !failure.IsPermanent(err) || failure.ReasonCode(err) != failure.ReasonInvalidEvent || len(got) != 0 {
		t.Fatalf("malformed: %v (reason %q), %d dispatched; want permanent invalid_event, none", err, failure.ReasonCode(err), len(got))
	}
	future := message.NewMessage("id-9", []byte(`{"type":"payment.failed","schema_version":9,"order_id":"o-1","order_version":1,`+
		`"occurred_at":"2026-11-23T09:00:00Z","data":{"reason":"x"}}`))
	if err := h(future); !failure.IsPermanent(err) || failure.ReasonCode(err) != events.ReasonUnsupportedVersion || len(got) != 0 {
		t.Fatalf("future version: %v (reason %q), %d dispatched; want permanent unsupported_version, none", err, failure.ReasonCode(err), len(got))
	}
	msg, err := events.Encode(events.Event{ID: "id-2", OrderID: "o-1", OrderVersion: 1, OccurredAt: time.Now(),
		Payload: events.PaymentFailed{Reason: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	msg.SetContext(context.WithValue(context.Background(), ctxKey{}, "tx"))
	err = h(msg)
	if len(got) != 1 || got[0].ID != "id-2" || got[0].Payload != (events.PaymentFailed{Reason: "x"}) {
		t.Fatalf("dispatched %+v, want the decoded event", got)
	}
	if !failure.IsPermanent(err) || failure.ReasonCode(err) != "unknown_order" {
		t.Fatalf("error %v, want permanent unknown_order", err)
	}
	if err := inbound.Unhandled(got[0]); !failure.IsPermanent(err) || failure.ReasonCode(err) != inbound.ReasonUnhandledEventType {
		t.Fatalf("Unhandled = %v, want permanent %s", err, inbound.ReasonUnhandledEventType)
	}
}

type ctxKey struct{}
