package messaging

import (
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// RetryConfig bounds the in-place retries of a failing handler: exponential
// backoff with jitter.
type RetryConfig struct {
	// MaxRetries is how many times a failed handler is tried again (so at most
	// MaxRetries+1 attempts per delivery). Default 5; -1 means no retries.
	MaxRetries int `env:"MAX_RETRIES"`
	// InitialInterval is the wait before the first retry. Default 100 ms.
	InitialInterval time.Duration `env:"INITIAL_INTERVAL"`
	// MaxInterval caps the wait between retries. Default 2 s.
	MaxInterval time.Duration `env:"MAX_INTERVAL"`
	// Multiplier grows the wait after each retry. Default 2.
	Multiplier float64 `env:"MULTIPLIER"`
	// RandomizationFactor spreads each wait over [w*(1-f), w*(1+f)] so that many
	// consumers failing together do not retry in lockstep. Default 0.5.
	RandomizationFactor float64 `env:"RANDOMIZATION_FACTOR"`
}

// Defaults returns c with zero fields set to their defaults.
func (c RetryConfig) Defaults() RetryConfig {
	if c.MaxRetries == 0 {
		c.MaxRetries = 5
	}
	if c.InitialInterval == 0 {
		c.InitialInterval = 100 * time.Millisecond
	}
	if c.MaxInterval == 0 {
		c.MaxInterval = 2 * time.Second
	}
	if c.Multiplier == 0 {
		c.Multiplier = 2
	}
	if c.RandomizationFactor == 0 {
		c.RandomizationFactor = 0.5
	}
	return c
}

// Validate reports the first invalid field.
func (c RetryConfig) Validate() error {
	switch {
	case c.MaxRetries < -1 || c.MaxRetries > 100:
		return fmt.Errorf("retry: max retries %d is outside -1..100", c.MaxRetries)
	case c.InitialInterval <= 0 || c.MaxInterval < c.InitialInterval:
		return errors.New("retry: need 0 < initial interval <= max interval")
	case c.Multiplier < 1:
		return errors.New("retry: multiplier must be >= 1")
	case c.RandomizationFactor < 0 || c.RandomizationFactor >= 1:
		return errors.New("retry: randomization factor must be in [0, 1)")
	}
	return nil
}

// FailureMode says what a consumer does with a message whose retries are spent.
type FailureMode string

// The failure modes (ADR 14).
const (
	// FailurePoison (the default): retry in place, then move the message to the
	// poison topic and go on with the partition. Progress over order.
	FailurePoison FailureMode = "poison"
	// FailureBlock: never poison; retry, nack, get it again, retry..., holding the
	// partition until the message succeeds (or a person intervenes). Order over
	// progress.
	FailureBlock FailureMode = "block"
)

// Middlewares returns the consumer middleware stack, outermost first:
//
//  1. Recoverer: a panic becomes an error (and is retried like one).
//  2. CorrelationID: messages a handler returns keep the incoming correlation id.
//  3. PoisonQueue: an error that reaches it sends the message to poisonTopic
//     through poison and acknowledges the original, so one bad message does not
//     stop its partition. Errors for which IsUnavailable is true are let through
//     instead: the message is nacked and delivered again, because an outage is not
//     the message's fault. The poisoned copy carries MetadataReasonCode, a public
//     code for the error (ReasonCode), next to the full error text.
//     Nor are errors for which IsInterrupted is true: a stop interrupted the
//     work, which is never a reason to poison (ADR 24).
//  4. interruptedByStop: an error returned after the message's context ended
//     is marked as interrupted, whatever it says.
//  5. Retry: up to Retry.MaxRetries retries with exponential backoff and jitter;
//     permanent errors (IsPermanent) and interrupted ones are not retried.
//  6. Recoverer again, so that a panicking handler is retried and then poisoned
//     like any failing one instead of being redelivered forever.
//
// With FailureBlock, step 3 is left out: every error is retried and nacked until
// the message succeeds. The handler itself comes next, normally wrapped by
// Inbox.Middleware.
func Middlewares(mode FailureMode, poisonTopic string, poison message.Publisher, retry RetryConfig, logger watermill.LoggerAdapter) ([]message.HandlerMiddleware, error) {
	if mode != FailurePoison && mode != FailureBlock {
		return nil, fmt.Errorf("consumer: failure mode %q is neither %q nor %q", mode, FailurePoison, FailureBlock)
	}
	if poisonTopic == "" {
		return nil, errors.New("consumer: poison topic is required")
	}
	retry = retry.Defaults()
	if err := retry.Validate(); err != nil {
		return nil, err
	}
	poisonMW, err := middleware.PoisonQueueWithFilter(poison, poisonTopic, func(err error) bool {
		return !IsUnavailable(err) && !IsInterrupted(err)
	})
	if err != nil {
		return nil, err
	}
	stack := []message.HandlerMiddleware{middleware.Recoverer, middleware.CorrelationID}
	if mode == FailurePoison {
		stack = append(stack, poisonMW, tagReasonCode)
	}
	return append(stack,
		interruptedByStop,
		countAttempts,
		middleware.Retry{
			MaxRetries:          max(retry.MaxRetries, 0),
			InitialInterval:     retry.InitialInterval,
			MaxInterval:         retry.MaxInterval,
			Multiplier:          retry.Multiplier,
			RandomizationFactor: retry.RandomizationFactor,
			ResetContextOnRetry: true,
			ShouldRetry:         func(p middleware.RetryParams) bool { return !IsPermanent(p.Err) && !IsInterrupted(p.Err) },
			Logger:              logger,
		}.Middleware,
		middleware.Recoverer,
	), nil
}
