package stop

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/msgtrace"
)

// StoppedError says why a consumer with the stop strategy gave up: the message
// it could not process and since when it stopped. Its Error text is safe to
// show to operators (consumer, message id, key, reason code, time); the
// handler's error, which may hold SQL text or data, is only reachable through
// Err (and Unwrap) and the log line written when the consumer stopped.
type StoppedError struct {
	// Consumer is the handler's name.
	Consumer string
	// MessageID and Key identify the message it gave up on (Key: kafka.MetadataKey).
	MessageID, Key string
	// ReasonCode is failure.ReasonCode(Err).
	ReasonCode string
	// Err is the handler's last error.
	Err error
	// Since is when the consumer stopped.
	Since time.Time
}

// Error implements error, without the handler's error text.
func (e *StoppedError) Error() string {
	return fmt.Sprintf("consumer %s stopped at %s: message %s (key %q) failed with reason %s",
		e.Consumer, e.Since.UTC().Format(time.RFC3339), e.MessageID, e.Key, e.ReasonCode)
}

// Unwrap returns the handler's error.
func (e *StoppedError) Unwrap() error { return e.Err }

// Stop is the stop strategy (a consumer.Strategy and consumer.HealthChecker).
// Make it with New; one value serves every consumer given it.
type Stop struct {
	mu        sync.Mutex
	consumers map[string]*stopped
}

// stopped is one consumer's gate and, once it stopped, why.
type stopped struct {
	gate consumer.Gate
	err  *StoppedError
}

// New returns a stop strategy.
func New() *Stop { return &Stop{consumers: map[string]*stopped{}} }

func (s *Stop) of(name string) *stopped {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.consumers[name]
	if !ok {
		c = &stopped{}
		s.consumers[name] = c
	}
	return c
}

// Held is how many messages of consumer name wait at its gate.
func (s *Stop) Held(name string) int { return s.of(name).gate.Held() }

// Retryable implements consumer.Strategy: the stack's usual rule.
func (s *Stop) Retryable(err error) bool { return consumer.RetryableInPlace(err) }

// Steps implements consumer.Strategy. Every message first waits at the
// consumer's gate; when a message's retries are spent on an error
// consumer.GivesUpOn accepts, the gate shuts for good: the failing message is
// handed back unacknowledged (it comes again, and waits), every other
// partition of the consumer holds its next message at the gate, Health fails,
// and the reason is logged. The graceful shutdown releases the held messages
// with consumer.ErrShuttingDown, never acknowledged.
func (s *Stop) Steps(c consumer.Consumer) ([]message.HandlerMiddleware, error) {
	st := s.of(c.Name)
	return []message.HandlerMiddleware{func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if err := st.gate.Wait(msg.Context(), c.ShuttingDown); err != nil {
				return nil, err
			}
			out, err := h(msg)
			if err == nil || !consumer.GivesUpOn(err) {
				return out, err
			}
			s.stop(c, st, msg, err)
			return nil, err
		}
	}}, nil
}

// stop records why c gives up on msg, shuts its gate for good and logs it;
// only the first failure is recorded.
func (s *Stop) stop(c consumer.Consumer, st *stopped, msg *message.Message, err error) {
	s.mu.Lock()
	first := st.err == nil
	if first {
		st.err = &StoppedError{Consumer: c.Name, MessageID: msg.UUID, Key: msg.Metadata.Get(kafka.MetadataKey),
			ReasonCode: failure.ReasonCode(err), Err: err, Since: time.Now()}
	}
	s.mu.Unlock()
	st.gate.ShutForGood()
	msgtrace.GivenUp(msg, "stopped the consumer", failure.ReasonCode(err))
	if first {
		c.Logger.ErrorContext(msg.Context(), "consumer gave up and stopped consuming: liveness fails until the process restarts",
			"consumer", c.Name, "message_id", msg.UUID, "key", msg.Metadata.Get(kafka.MetadataKey),
			"reason_code", failure.ReasonCode(err), "err", err)
	}
}

// Health implements consumer.HealthChecker: nil, or one *StoppedError per
// consumer that gave up, joined. It stays failing until the process restarts.
func (s *Stop) Health() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, st := range s.consumers {
		if st.err != nil {
			errs = append(errs, st.err)
		}
	}
	return errors.Join(errs...)
}
