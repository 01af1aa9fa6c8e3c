package messaging

import (
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/sony/gobreaker"
)

// BreakerConfig configures the circuit breakers (env prefix BREAKER_, e.g.
// ORDER_BREAKER_ENABLED): one around each consumer's handler, counting only
// outages (IsUnavailable), and one around the forwarder's Kafka publisher,
// counting every refusal that retrying may fix. Combinable with every failure
// strategy (ADR 35). Off by default.
type BreakerConfig struct {
	// Enabled turns the breakers on.
	Enabled bool `env:"ENABLED"`
	// Failures is how many consecutive failures open a breaker. Default 5.
	Failures uint32 `env:"FAILURES"`
	// OpenDuration is how long an open breaker fails every call at once before
	// it lets probes through (half-open). Default 10 s.
	OpenDuration time.Duration `env:"OPEN_DURATION"`
	// HalfOpenProbes is how many calls a half-open breaker lets through; that
	// many successes close it, one failure opens it again. Default 1.
	HalfOpenProbes uint32 `env:"HALF_OPEN_PROBES"`
}

// Defaults returns c with zero fields set to their defaults.
func (c BreakerConfig) Defaults() BreakerConfig {
	if c.Failures == 0 {
		c.Failures = 5
	}
	if c.OpenDuration == 0 {
		c.OpenDuration = 10 * time.Second
	}
	if c.HalfOpenProbes == 0 {
		c.HalfOpenProbes = 1
	}
	return c
}

// Validate reports the first invalid field.
func (c BreakerConfig) Validate() error {
	if c.OpenDuration < 0 {
		return fmt.Errorf("breaker: open duration %s is negative", c.OpenDuration)
	}
	return nil
}

// breakerOpenError is an open (or saturated half-open) breaker's refusal: an
// outage for the consumer stack (never poisoned, never a reason to stop) and a
// retryable refusal for the forwarder (the row stays in the outbox).
type breakerOpenError struct{ err error }

func (e breakerOpenError) Error() string     { return "circuit breaker: " + e.err.Error() }
func (e breakerOpenError) Unwrap() error     { return e.err }
func (e breakerOpenError) Unavailable() bool { return true }

// markOpen turns gobreaker's refusals into breakerOpenError.
func markOpen(err error) error {
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return breakerOpenError{err}
	}
	return err
}

// settings are the gobreaker settings of c for the breaker named name, which
// counts an error as a failure when failure says so, and logs its state changes.
func (c BreakerConfig) settings(name string, failure func(error) bool, logger watermill.LoggerAdapter) gobreaker.Settings {
	c = c.Defaults()
	return gobreaker.Settings{
		Name:         name,
		MaxRequests:  c.HalfOpenProbes,
		Timeout:      c.OpenDuration,
		ReadyToTrip:  func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= c.Failures },
		IsSuccessful: func(err error) bool { return err == nil || !failure(err) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			logger.Info("circuit breaker changed state", watermill.LogFields{"breaker": name, "from": from.String(), "to": to.String()})
		},
	}
}

// breakerStep is the consumer's circuit breaker (nil when disabled): inside
// Retry, around each attempt. Consecutive outages (IsUnavailable) open it;
// while open, attempts fail at once with an error IsUnavailable recognises, so
// no strategy gives up on the message.
func (cs *Consumers) breakerStep(name string) []message.HandlerMiddleware {
	if !cs.config.Breaker.Enabled {
		return nil
	}
	cb := middleware.NewCircuitBreaker(cs.config.Breaker.settings("consumer "+name, IsUnavailable, cs.wlog))
	return []message.HandlerMiddleware{markOpenStep, cb.Middleware}
}

// markOpenStep marks an open breaker's refusal as an outage (markOpen).
func markOpenStep(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		return out, markOpen(err)
	}
}

// breakerPublisher is the forwarder's Kafka publisher behind a circuit
// breaker: consecutive refusals that retrying may fix (Kafka down or leaderless;
// UnfixableReason "") open it, and while open Publish fails at once instead of
// waiting on the producer's retries. A refusal of the record itself (parked,
// ADR 22) means Kafka answered and does not count. It only ever returns an
// error where out would have, so the outbox keeps every row Kafka did not
// acknowledge (ADR 20).
type breakerPublisher struct {
	out message.Publisher
	cb  *gobreaker.CircuitBreaker
}

func newBreakerPublisher(c BreakerConfig, out message.Publisher, logger watermill.LoggerAdapter) *breakerPublisher {
	return &breakerPublisher{out: out, cb: forwarderBreaker(c, logger)}
}

// forwarderBreaker is the circuit breaker of a forwarder's sends to Kafka: it
// counts only refusals that retrying may fix (an outage), not a message Kafka
// can never take.
func forwarderBreaker(c BreakerConfig, logger watermill.LoggerAdapter) *gobreaker.CircuitBreaker {
	retryable := func(err error) bool { return UnfixableReason(err, "", nil) == "" }
	return gobreaker.NewCircuitBreaker(c.settings("forwarder publisher", retryable, logger))
}

// Publish implements message.Publisher.
func (p *breakerPublisher) Publish(topic string, msgs ...*message.Message) error {
	_, err := p.cb.Execute(func() (any, error) { return nil, p.out.Publish(topic, msgs...) })
	return markOpen(err)
}

// Close implements message.Publisher.
func (p *breakerPublisher) Close() error { return p.out.Close() }

// SetBreaker puts a circuit breaker configured by c around the Kafka publisher
// of the forwarders built afterwards (nothing if c is not enabled; ADR 35).
func (o *Outbox) SetBreaker(c BreakerConfig) { o.breaker = c }
