package consumer

import (
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/breaker"
	"github.com/onceflow/onceflow/pkg/consumer/delayed"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// Config configures Consumers. Zero settings take their defaults.
type Config struct {
	// ConsumerGroup is the service's Kafka consumer group; it also scopes the
	// inbox and the delayed path. Required.
	ConsumerGroup string
	// PoisonTopic receives what the consumers give up on. Required.
	PoisonTopic string
	// Retry bounds the in-place retries of a failing handler.
	Retry RetryConfig
	// HandlerTimeout bounds each attempt of a consumer's handler: past it the
	// attempt's context ends and the attempt fails with ErrHandlerTimeout, which
	// is retried and then given up on like any failure (reason code
	// handler_timeout). Default 30 s; a negative value turns it off.
	HandlerTimeout time.Duration
	// Throttle bounds how many messages each consumer takes per period (off by
	// default).
	Throttle ThrottleConfig
	// Breaker puts a circuit breaker around each consumer's handler when
	// enabled: consecutive outages open it.
	Breaker breaker.Config
	// Delayed configures every consumer's delayed path (package delayed).
	Delayed delayed.Config
	// Kafka is where the consumers subscribe.
	Kafka kafka.Config

	// DB is the service's database: the inbox, the delayed path and the
	// strategies' tables (with their migrations applied). Required.
	DB *sql.DB
	// Poison publishes what the consumers give up on to PoisonTopic
	// (kafka.Config.NewPoisonPublisher). Required.
	Poison message.Publisher
	// Topics, if not nil, are ensured before the first subscription.
	Topics *kafka.Topics
	// Logger gets the consumers' log lines. Default: none.
	Logger *slog.Logger
	// Strategy is what every consumer does with a message whose retries are
	// spent, unless Strategies names another for it. Default: Poison.
	Strategy Strategy
	// Strategies gives single consumers another strategy, by consumer name. A
	// name that is not a consumer (Handle) fails Run.
	Strategies map[string]Strategy
	// Hooks are told about retries, poisoned messages and duplicates.
	Hooks Hooks
	// OnRouter, if not nil, is called with the consumers' Watermill router
	// once it is built and before it runs (e.g. to add Watermill's metrics
	// component).
	OnRouter func(*message.Router)
}

// Hooks are told where things happen in the consumer stack, so that a
// metrics adapter (pkg/metrics) can count them without this package knowing
// about it. A nil field is not called. Hooks are called on the hot path, so
// they must be cheap and must not block; they never change what happens to a
// message.
type Hooks struct {
	// Retried is called at the start of each in-place retry of a message
	// (each attempt of a delivery after its first).
	Retried func()
	// Poisoned is called after a message was published to the poison topic,
	// with its public reason code (failure.MetadataReasonCode;
	// failure.ReasonUnclassified if it has no valid one), a bounded set of
	// values.
	Poisoned func(reasonCode string)
	// Duplicate is called when the inbox absorbed a message its consumer group
	// had already processed (the handler did not run).
	Duplicate func()
}

// Defaults returns c with zero settings set to their defaults.
func (c Config) Defaults() Config {
	c.Retry = c.Retry.Defaults()
	c.Throttle = c.Throttle.Defaults()
	c.Breaker = c.Breaker.Defaults()
	c.Delayed = c.Delayed.Defaults()
	c.Kafka = c.Kafka.Defaults()
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = DefaultHandlerTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Strategy == nil {
		c.Strategy = Poison
	}
	return c
}

// Validate reports every invalid setting (the wiring is checked by
// NewConsumers).
func (c Config) Validate() error {
	var errs []error
	if c.ConsumerGroup == "" {
		errs = append(errs, errors.New("consumer group is required"))
	}
	if c.PoisonTopic == "" {
		errs = append(errs, errors.New("poison topic is required"))
	}
	for name, s := range c.Strategies {
		if s == nil {
			errs = append(errs, fmt.Errorf("consumer %s: no strategy", name))
		}
	}
	return errors.Join(append(errs, c.Kafka.Validate(), c.Retry.Validate(), c.Throttle.Validate(),
		c.Breaker.Validate(), c.Delayed.Validate())...)
}

// options are what the fault build's and the tests' Options change.
type options struct {
	// wrapInbox replace or wrap, in order, the inbox middleware that runs in
	// front of every consumer (not projections).
	wrapInbox []func(message.HandlerMiddleware) message.HandlerMiddleware
	// router, if set, builds the router instead of the consumer stack.
	router func(*Consumers) (*message.Router, error)
}

// Option adjusts Consumers before they are built. Production code passes
// none: the only ones are the fault build's (WithFaults, compiled only with
// -tags faults).
type Option func(*options)
