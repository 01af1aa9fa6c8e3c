package failure_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
)

type codedErr struct{ code string }

func (e codedErr) Error() string      { return "Error 1062: Duplicate entry 'x' for key 'PRIMARY'" }
func (e codedErr) ReasonCode() string { return e.code }

func TestReasonCode(t *testing.T) {
	t.Parallel()
	_, decodeErr := events.Decode(message.NewMessage("id-1", []byte("not json")))
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"decode error", decodeErr, failure.ReasonInvalidEvent},
		{"wrapped decode error", fmt.Errorf("handling: %w", decodeErr), failure.ReasonInvalidEvent},
		{"SQL error text", errors.New("Error 1146 (42S02): Table 'orders' doesn't exist"), failure.ReasonHandlerFailed},
		{"error with its own code", fmt.Errorf("x: %w", codedErr{"unknown_order"}), "unknown_order"},
		{"a code that is really text", codedErr{"Duplicate entry 'x'"}, failure.ReasonHandlerFailed},
		{"PermanentCode", failure.PermanentCode("unhandled_event_type", errors.New("no")), "unhandled_event_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := failure.ReasonCode(tt.err); got != tt.want {
				t.Fatalf("ReasonCode(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
	if !failure.IsPermanent(failure.PermanentCode("x", errors.New("y"))) {
		t.Fatal("PermanentCode is not permanent")
	}
}

func TestValidReasonCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code string
		want bool
	}{
		{"invalid_event", true},
		{"a", true},
		{"x2_y", true},
		{"", false},
		{"Invalid", false},
		{"2fast", false},
		{"_x", false},
		{"has space", false},
		{"Error 1062: Duplicate entry", false},
		{"a234567890123456789012345678901234567890", true},
		{"a2345678901234567890123456789012345678901", false},
	}
	for _, tt := range tests {
		if got := failure.ValidReasonCode(tt.code); got != tt.want {
			t.Errorf("ValidReasonCode(%q) = %t, want %t", tt.code, got, tt.want)
		}
	}
	if !failure.ValidReasonCode(apperr.ReasonUnclassified) {
		t.Error("apperr.ReasonUnclassified is not a valid reason code")
	}
}
