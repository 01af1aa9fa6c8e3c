package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// DefaultHandlerTimeout is Config.HandlerTimeout's default.
const DefaultHandlerTimeout = 30 * time.Second

// ReasonHandlerTimeout is the reason code (see ReasonCode) of a message given
// up on because every attempt ran past Config.HandlerTimeout.
const ReasonHandlerTimeout = "handler_timeout"

// ErrHandlerTimeout is in the chain of the error of an attempt that ran past
// Config.HandlerTimeout (errors.Is(err, ErrHandlerTimeout)). Such an error is
// an ordinary failure, not an outage: the stack retries it and then gives up on
// it like any other (poison, skip, ...), with reason code ReasonHandlerTimeout.
// It deliberately does not carry the handler's own error in its chain, only in
// its text: that error is usually context.DeadlineExceeded, which
// failure.IsUnavailable
// counts as an outage (never given up on), and a handler that hangs on every
// attempt is a bug, not an outage.
var ErrHandlerTimeout = errors.New("consumer: the handler ran past its timeout")

// handlerTimeoutError is the error of a timed-out attempt.
type handlerTimeoutError struct {
	timeout time.Duration
	err     error // the handler's own error, kept for the text only
}

func (e handlerTimeoutError) Error() string {
	return ErrHandlerTimeout.Error() + " (" + e.timeout.String() + "): " + e.err.Error()
}
func (e handlerTimeoutError) Is(target error) bool { return target == ErrHandlerTimeout }
func (e handlerTimeoutError) ReasonCode() string   { return ReasonHandlerTimeout }

// errAttemptTimedOut is the cancellation cause of an attempt's context when its
// timeout fired.
var errAttemptTimedOut = errors.New("consumer: handler attempt timed out")

// attemptTimeout bounds one attempt (it sits inside Retry) to d: the message's
// context ends after d with cause errAttemptTimedOut, and the attempt's error,
// whatever it says, becomes a handlerTimeoutError. A handler only stops if it
// honours its context (every database call does); the timeout cannot abandon
// one that ignores it. A shutdown wins over the timeout: if the message's own
// context (the drain's) ended too, the error is returned unchanged, for
// interruptedByShutdown to mark. After the attempt the message gets its previous
// context back. d <= 0 returns no middleware.
func attemptTimeout(d time.Duration) []message.HandlerMiddleware {
	if d <= 0 {
		return nil
	}
	return []message.HandlerMiddleware{func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			parent := msg.Context()
			ctx, cancel := context.WithTimeoutCause(parent, d, errAttemptTimedOut)
			defer cancel()
			msg.SetContext(ctx)
			defer msg.SetContext(parent)
			out, err := h(msg)
			if err != nil && parent.Err() == nil && errors.Is(context.Cause(ctx), errAttemptTimedOut) {
				return out, handlerTimeoutError{timeout: d, err: err}
			}
			return out, err
		}
	}}
}
