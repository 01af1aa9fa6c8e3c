package messaging

import (
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/pkg/outbox"

	"github.com/onceflow/onceflow/pkg/breaker"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// Config is the messaging part of a service's configuration: its database (which
// holds the outbox and the inbox), Kafka, the forwarder, the consumers and the
// retention of this package's tables. A service nests it under its own
// environment prefix, e.g. ORDER_DB_DSN, ORDER_KAFKA_BROKERS or
// PAYMENT_OUTBOX_BATCH_SIZE. Zero fields take the defaults of each part.
type Config struct {
	DB     sqldb.Config  `envPrefix:"DB_"`
	Kafka  kafka.Config  `envPrefix:"KAFKA_"`
	Outbox outbox.Config `envPrefix:"OUTBOX_"`
	Retry  RetryConfig   `envPrefix:"RETRY_"`
	// Pause configures FailurePause's prober (ADR 35).
	Pause PauseConfig `envPrefix:"PAUSE_"`
	// Breaker configures the circuit breakers of the consumers and the
	// forwarder (ADR 35); off by default.
	Breaker breaker.Config `envPrefix:"BREAKER_"`
	// Requeue shapes FailureRequeue and every consumer's delayed path (ADR 32).
	Requeue RequeueConfig `envPrefix:"REQUEUE_"`
	// Retention bounds the inbox and the poison replay records (ADR 0025).
	Retention RetentionConfig `envPrefix:"RETENTION_"`
	// ConsumerGroup is the service's Kafka consumer group; it also scopes the inbox.
	// Required.
	ConsumerGroup string `env:"CONSUMER_GROUP"`
	// PoisonTopic receives what the service's consumers give up on. Required.
	PoisonTopic string `env:"POISON_TOPIC"`
	// FailureMode is the failure strategy of the service's consumers: what they
	// do when a message's retries are spent, one of FailureModes; default
	// "poison" (ADR 14, 31).
	FailureMode FailureMode `env:"FAILURE_MODE"`
	// FailureModes gives single consumers another strategy than FailureMode,
	// by consumer (handler) name, e.g.
	// PAYMENT_FAILURE_MODES="payment.order-events:park-key". A name that is not
	// a consumer of the service fails the start.
	FailureModes map[string]FailureMode `env:"FAILURE_MODES"`
	// ParkKey configures the park-key failure mode (ADR 33).
	ParkKey ParkKeyConfig `envPrefix:"PARK_KEY_"`
	// HandlerTimeout bounds each attempt of a consumer's handler: past it the
	// attempt's context ends and the attempt fails with ErrHandlerTimeout, which
	// is retried and then given up on like any failure (reason code
	// handler_timeout). Default 30 s; a negative value turns it off.
	HandlerTimeout time.Duration `env:"HANDLER_TIMEOUT"`
	// Throttle bounds how many messages each consumer takes per period (off by
	// default).
	Throttle ThrottleConfig `envPrefix:"THROTTLE_"`
}

// Defaults returns c with zero fields set to their defaults.
func (c Config) Defaults() Config {
	if c.FailureMode == "" {
		c.FailureMode = FailurePoison
	}
	c.DB = c.DB.Defaults()
	c.Kafka = c.Kafka.Defaults()
	c.Outbox = c.Outbox.Defaults()
	c.Retry = c.Retry.Defaults()
	c.Pause = c.Pause.Defaults()
	c.Breaker = c.Breaker.Defaults()
	c.Requeue = c.Requeue.Defaults()
	c.Retention = c.Retention.Defaults()
	c.ParkKey = c.ParkKey.Defaults()
	c.Throttle = c.Throttle.Defaults()
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = DefaultHandlerTimeout
	}
	return c
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	return errors.Join(c.validateConsumers(), c.DB.Validate(), c.Outbox.Validate(), c.Retention.Validate())
}

// validateConsumers reports every invalid field that Consumers use.
func (c Config) validateConsumers() error {
	var errs []error
	errs = append(errs, c.FailureMode.Validate())
	for name, m := range c.FailureModes {
		if err := m.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("consumer %s: %w", name, err))
		}
	}
	if c.ConsumerGroup == "" {
		errs = append(errs, errors.New("consumer group is required"))
	}
	if c.PoisonTopic == "" {
		errs = append(errs, errors.New("poison topic is required"))
	}
	return errors.Join(append(errs, c.Kafka.Validate(), c.Retry.Validate(), c.ParkKey.Validate(), c.Throttle.Validate(),
		c.Pause.Validate(), c.Breaker.Validate(), c.Requeue.Validate())...)
}

// Option adjusts Consumers before they run. Production code passes none: the
// only ones are the fault-injection build's (WithFaults, compiled only with
// -tags faults, ADR 21).
type Option func(cs *Consumers)
