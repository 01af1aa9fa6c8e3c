package messaging_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/messaging"
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
		{"decode error", decodeErr, messaging.ReasonInvalidEvent},
		{"wrapped decode error", fmt.Errorf("handling: %w", decodeErr), messaging.ReasonInvalidEvent},
		{"no message id", messaging.ErrNoMessageID, messaging.ReasonInvalidEvent},
		{"SQL error text", errors.New("Error 1146 (42S02): Table 'orders' doesn't exist"), messaging.ReasonHandlerFailed},
		{"error with its own code", fmt.Errorf("x: %w", codedErr{"unknown_order"}), "unknown_order"},
		{"a code that is really text", codedErr{"Duplicate entry 'x'"}, messaging.ReasonHandlerFailed},
		{"PermanentCode", messaging.PermanentCode("unhandled_event_type", errors.New("no")), "unhandled_event_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := messaging.ReasonCode(tt.err); got != tt.want {
				t.Fatalf("ReasonCode(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
	if !messaging.IsPermanent(messaging.PermanentCode("x", errors.New("y"))) {
		t.Fatal("PermanentCode is not permanent")
	}
}
