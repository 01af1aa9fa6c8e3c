package consumer

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

// Middleware is the in-place retry: exponential backoff with jitter, bounded
// by MaxRetries; errors for which retryable is false are not retried. Each
// attempt gets the message's context as it was when the retry began.
func (c RetryConfig) Middleware(retryable func(error) bool, logger watermill.LoggerAdapter) message.HandlerMiddleware {
	return middleware.Retry{
		MaxRetries:          max(c.MaxRetries, 0),
		InitialInterval:     c.InitialInterval,
		MaxInterval:         c.MaxInterval,
		Multiplier:          c.Multiplier,
		RandomizationFactor: c.RandomizationFactor,
		ResetContextOnRetry: true,
		ShouldRetry:         func(p middleware.RetryParams) bool { return retryable(p.Err) },
		Logger:              logger,
	}.Middleware
}
