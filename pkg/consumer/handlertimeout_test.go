package consumer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/failure"

	"github.com/ThreeDotsLabs/watermill/message"
)

// TestHandlerTimeout: an attempt that runs past the timeout fails with
// ErrHandlerTimeout, which the stack retries and then gives up on (it is not an
// outage), with reason code handler_timeout; an error returned in time is left
// alone; a stop that ends the message's context wins over the timeout; the
// message gets its context back after the attempt.
func TestHandlerTimeout(t *testing.T) {
	t.Parallel()
	handlerErr := errors.New("lock wait timeout")
	tests := []struct {
		name string
		// handler runs one attempt; stop ends the message's own context.
		handler     func(msg *message.Message, stop context.CancelFunc) error
		wantTimeout bool
		wantStopped bool
	}{
		{"hangs until its context ends", func(msg *message.Message, _ context.CancelFunc) error {
			<-msg.Context().Done()
			return msg.Context().Err()
		}, true, false},
		{"fails in time", func(*message.Message, context.CancelFunc) error { return handlerErr }, false, false},
		{"hangs, and a stop comes before it returns", func(msg *message.Message, stop context.CancelFunc) error {
			<-msg.Context().Done()
			stop()
			return msg.Context().Err()
		}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			parent, stop := context.WithCancel(context.Background())
			defer stop()
			msg := message.NewMessage("id", nil)
			msg.SetContext(parent)
			h := func(msg *message.Message) ([]*message.Message, error) { return nil, tt.handler(msg, stop) }
			mws := attemptTimeout(10 * time.Millisecond)
			if len(mws) != 1 {
				t.Fatalf("attemptTimeout gave %d middlewares, want 1", len(mws))
			}
			_, err := interruptedByShutdown(mws[0](h))(msg)
			if msg.Context() != parent {
				t.Errorf("the message kept the attempt's context")
			}
			if got := errors.Is(err, ErrHandlerTimeout); got != tt.wantTimeout {
				t.Fatalf("errors.Is(%v, ErrHandlerTimeout) = %v, want %v", err, got, tt.wantTimeout)
			}
			if got := IsInterrupted(err); got != tt.wantStopped {
				t.Fatalf("IsInterrupted(%v) = %v, want %v", err, got, tt.wantStopped)
			}
			if !tt.wantTimeout {
				return
			}
			if failure.IsUnavailable(err) || !GivesUpOn(err) || !RetryableInPlace(err) {
				t.Errorf("timeout %v: unavailable %v, gives up on %v, retried %v; want false, true, true",
					err, failure.IsUnavailable(err), GivesUpOn(err), RetryableInPlace(err))
			}
			if got := failure.ReasonCode(err); got != ReasonHandlerTimeout {
				t.Errorf("failure.ReasonCode = %q, want %q", got, ReasonHandlerTimeout)
			}
		})
	}
	if mws := attemptTimeout(-1); len(mws) != 0 {
		t.Errorf("a negative timeout gave %d middlewares, want none", len(mws))
	}
}
