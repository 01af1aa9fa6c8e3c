package messaging

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/msgtrace"

	"github.com/ThreeDotsLabs/watermill/message"
)

// ConsumerStoppedError says why a consumer with FailureStop gave up: the
// message it could not process and since when it stopped. Its Error text is
// safe to show to operators (consumer, message id, key, reason code, time); the
// handler's error, which may hold SQL text or data, is only reachable through
// Err (and Unwrap) and the log line written when the consumer stopped.
type ConsumerStoppedError struct {
	// Consumer is the handler's name.
	Consumer string
	// MessageID and Key identify the message it gave up on (Key: MetadataKey).
	MessageID, Key string
	// ReasonCode is ReasonCode(Err).
	ReasonCode string
	// Err is the handler's last error.
	Err error
	// Since is when the consumer stopped.
	Since time.Time
}

// Error implements error, without the handler's error text.
func (e *ConsumerStoppedError) Error() string {
	return fmt.Sprintf("consumer %s stopped at %s: message %s (key %q) failed with reason %s",
		e.Consumer, e.Since.UTC().Format(time.RFC3339), e.MessageID, e.Key, e.ReasonCode)
}

// Unwrap returns the handler's error.
func (e *ConsumerStoppedError) Unwrap() error { return e.Err }

// Health reports whether every consumer is alive: nil, or one
// *ConsumerStoppedError per consumer that gave up (FailureStop), joined. A
// service's liveness endpoint (/healthz) answers 503 while it fails, so that an
// orchestrator restarts the process or an operator looks; it stays failing until
// the process restarts (ADR 35).
func (cs *Consumers) Health() error {
	var errs []error
	for _, g := range cs.gates.all() {
		g.mu.Lock()
		if g.stopped != nil {
			errs = append(errs, g.stopped)
		}
		g.mu.Unlock()
	}
	return errors.Join(errs...)
}

// stopStep is FailureStop's step. Every message first waits at the consumer's
// gate; when a message's retries are spent on an error givesUpOn accepts, the
// gate shuts for good: the failing message is handed back unacknowledged (it
// comes again, and waits), every other partition of the consumer holds its next
// message at the gate, Health fails, and the reason is logged. A stop (Drain)
// releases the held messages with ErrStopping, never acknowledged.
func (cs *Consumers) stopStep(name string) message.HandlerMiddleware {
	g := cs.gates.of(name)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if err := g.wait(msg.Context(), cs.drain.stopped); err != nil {
				return nil, err
			}
			out, err := h(msg)
			if err == nil || !givesUpOn(err) {
				return out, err
			}
			cs.stopConsumer(g, msg, err)
			return nil, err
		}
	}
}

// stopConsumer records why g's consumer gives up on msg, shuts its gate and
// logs it; only the first failure is recorded.
func (cs *Consumers) stopConsumer(g *gate, msg *message.Message, err error) {
	g.mu.Lock()
	first := g.stopped == nil
	if first {
		g.stopped = &ConsumerStoppedError{Consumer: g.name, MessageID: msg.UUID, Key: msg.Metadata.Get(kafka.MetadataKey),
			ReasonCode: failure.ReasonCode(err), Err: err, Since: time.Now()}
		if g.shut == nil {
			g.shut = make(chan struct{})
		}
	}
	g.mu.Unlock()
	msgtrace.GivenUp(msg, "stopped the consumer", failure.ReasonCode(err))
	if first {
		cs.logger.ErrorContext(msg.Context(), "consumer gave up and stopped consuming: liveness fails until the process restarts",
			"consumer", g.name, "message_id", msg.UUID, "key", msg.Metadata.Get(kafka.MetadataKey),
			"reason_code", failure.ReasonCode(err), "err", err)
	}
}

// HealthCheck is Health in the shape of an HTTP health endpoint's check (ctx is
// not used).
func (cs *Consumers) HealthCheck(context.Context) error { return cs.Health() }
