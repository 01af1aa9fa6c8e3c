package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// ErrShuttingDown is the error of a message that arrives after Consumers.Drain
// began: it is handed back to the subscriber, unhandled and unacknowledged. It
// wraps context.Canceled, so Watermill's router does not log it as a handler
// failure, and IsInterrupted recognises it.
var ErrShuttingDown = fmt.Errorf("consumer: shutting down: %w", context.Canceled)

// errAbandoned is the cause given to the contexts of handlers still running when
// the drain time is up.
var errAbandoned = fmt.Errorf("consumer: in-flight work abandoned: the drain time of the shutdown is up: %w", context.Canceled)

// interruptedError marks a handler failure that happened while the message's
// context was cancelled: the shutdown interrupted the work, the message is not
// at fault.
type interruptedError struct{ err error }

func (e interruptedError) Error() string { return "interrupted by shutdown: " + e.err.Error() }
func (e interruptedError) Unwrap() error { return e.err }

// IsInterrupted reports whether err says that the work was interrupted by a
// shutdown: context.Canceled anywhere in its chain (ErrShuttingDown included),
// or an error the consumer stack marked because the message's context had
// ended when the handler failed. Such an error is never a reason to give up on
// a message: the consumer stack neither retries nor poisons it, and the
// message stays unacknowledged, to be delivered again (to this process or,
// after the restart or a rebalance, to another).
func IsInterrupted(err error) bool {
	var ie interruptedError
	return errors.As(err, &ie) || errors.Is(err, context.Canceled)
}

// interruptedByShutdown marks every error a handler returns after its
// message's context ended (whoever ended it: the drain deadline, or
// Watermill's router closing) as interrupted, whatever the error says: a
// cancelled database call surfaces as context.Canceled, a bad connection, or a
// retry loop's last error, and none of them is the message's fault.
func interruptedByShutdown(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		out, err := h(msg)
		if err != nil && ctx.Err() != nil && !IsInterrupted(err) {
			err = interruptedError{err}
		}
		return out, err
	}
}

// drain lets in-flight handlers finish when the consumers shut down. Watermill's
// router cancels every message's context the moment it closes (Router.Run
// cancels the context it passes to Subscribe, from which watermill-kafka derives
// each message's context), so a shutdown would cut every database call in
// flight. drain's middleware runs each handler on a context detached from that
// cancellation (context.WithoutCancel) and ended only by abandon, at the drain
// deadline; it counts the handlers in flight, and once the shutdown began it
// hands new messages back unhandled (ErrShuttingDown: nacked, never acked).
type drain struct {
	mu       sync.Mutex
	draining bool
	// shuttingDown closes when the shutdown begins (messages held at a gate leave).
	shuttingDown chan struct{}
	inflight     sync.WaitGroup

	// abandonCtx ends when the drain time is up (cause errAbandoned).
	abandonCtx context.Context
	abandon    context.CancelCauseFunc
}

func newDrain() *drain {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &drain{abandonCtx: ctx, abandon: cancel, shuttingDown: make(chan struct{})}
}

// enter admits one handler run unless the shutdown began.
func (d *drain) enter() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.draining {
		return false
	}
	d.inflight.Add(1)
	return true
}

// Middleware is the outermost middleware of every handler of a Consumers.
func (d *drain) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if !d.enter() {
			return nil, ErrShuttingDown
		}
		defer d.inflight.Done()
		ctx, cancel := context.WithCancelCause(context.WithoutCancel(msg.Context()))
		defer cancel(nil)
		stop := context.AfterFunc(d.abandonCtx, func() { cancel(context.Cause(d.abandonCtx)) })
		defer stop()
		msg.SetContext(ctx)
		return h(msg)
	}
}

// shutDown refuses new handler runs and waits until the running ones return or
// until deadline; then it abandons those still running (their contexts end,
// with cause errAbandoned) and reports that it had to.
func (d *drain) shutDown(deadline time.Time) (abandoned bool) {
	d.mu.Lock()
	if !d.draining {
		close(d.shuttingDown)
	}
	d.draining = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.inflight.Wait(); close(done) }()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		d.abandon(errAbandoned)
		return true
	}
}
