package breaker

import (
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/sony/gobreaker"
)

// Config configures the circuit breakers (env prefix BREAKER_, e.g.
// ORDER_BREAKER_ENABLED): one around each consumer's handler and one around
// the forwarder's Kafka publisher. Off by default.
type Config struct {
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
func (c Config) Defaults() Config {
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
func (c Config) Validate() error {
	if c.OpenDuration < 0 {
		return fmt.Errorf("breaker: open duration %s is negative", c.OpenDuration)
	}
	return nil
}

// openError is an open (or saturated half-open) breaker's refusal: an outage
// for a consumer stack and a refusal retrying may fix for a forwarder.
type openError struct{ err error }

func (e openError) Error() string     { return "circuit breaker: " + e.err.Error() }
func (e openError) Unwrap() error     { return e.err }
func (e openError) Unavailable() bool { return true }

// MarkOpen turns gobreaker's refusals (open state, too many half-open
// requests) into an error with `Unavailable() bool`; other errors pass.
func MarkOpen(err error) error {
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return openError{err}
	}
	return err
}

// settings are the gobreaker settings of c for the breaker named name, which
// counts an error as a failure when counts says so, and logs its state changes.
func (c Config) settings(name string, counts func(error) bool, logger watermill.LoggerAdapter) gobreaker.Settings {
	c = c.Defaults()
	return gobreaker.Settings{
		Name:         name,
		MaxRequests:  c.HalfOpenProbes,
		Timeout:      c.OpenDuration,
		ReadyToTrip:  func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= c.Failures },
		IsSuccessful: func(err error) bool { return err == nil || !counts(err) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			logger.Info("circuit breaker changed state", watermill.LogFields{"breaker": name, "from": from.String(), "to": to.String()})
		},
	}
}

// New returns the breaker named name configured by c (enabled or not: the
// caller decides whether to use it), counting the errors for which counts is
// true.
func New(c Config, name string, counts func(error) bool, logger watermill.LoggerAdapter) *gobreaker.CircuitBreaker {
	return gobreaker.NewCircuitBreaker(c.settings(name, counts, logger))
}

// Middleware returns a consumer's breaker step (nil when c is disabled), to
// sit inside the retry, around each attempt: consecutive failures for which
// counts is true open it; while open, attempts fail at once with MarkOpen's
// error.
func Middleware(c Config, name string, counts func(error) bool, logger watermill.LoggerAdapter) []message.HandlerMiddleware {
	if !c.Enabled {
		return nil
	}
	cb := middleware.NewCircuitBreaker(c.settings(name, counts, logger))
	return []message.HandlerMiddleware{markOpenStep, cb.Middleware}
}

// markOpenStep marks an open breaker's refusal as an outage (MarkOpen).
func markOpenStep(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		return out, MarkOpen(err)
	}
}

// Publisher returns out behind the breaker named name (out itself when c is
// disabled): consecutive refusals for which counts is true open it, and while
// open Publish fails at once with MarkOpen's error instead of waiting on out.
func Publisher(c Config, name string, out message.Publisher, counts func(error) bool, logger watermill.LoggerAdapter) message.Publisher {
	if !c.Enabled {
		return out
	}
	return &publisher{out: out, cb: New(c, name, counts, logger)}
}

type publisher struct {
	out message.Publisher
	cb  *gobreaker.CircuitBreaker
}

// Publish implements message.Publisher.
func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	_, err := p.cb.Execute(func() (any, error) { return nil, p.out.Publish(topic, msgs...) })
	return MarkOpen(err)
}

// Close implements message.Publisher.
func (p *publisher) Close() error { return p.out.Close() }
