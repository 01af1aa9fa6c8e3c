package consumer

import (
	"context"
	"database/sql"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/failure"
)

// A Strategy decides what a consumer does with a message whose in-place
// retries are spent (ADR 14 and 31; docs/strategies.md compares them under the
// same faults). Consumers use Config.Strategy unless Config.Strategies names
// another for a consumer. Poison and Block are the stack's own; the other
// strategies are packages of their own (consumer/skip, /stop, /pause,
// /requeue, /parkkey), built by the service and given in Config.
//
// A strategy may also implement Runner (a loop that runs while the consumers
// run) and HealthChecker (a failure that /healthz reports).
type Strategy interface {
	// Steps returns the strategy's middleware for consumer c, outermost first.
	// They sit inside the throttle, the recoverer and the correlation id, and
	// outside the retry (see Consumers), so they see a message's final error
	// once its retries are spent. No step may give up on an error for which
	// GivesUpOn is false.
	Steps(c Consumer) ([]message.HandlerMiddleware, error)
	// Retryable reports whether the in-place retry retries err.
	Retryable(err error) bool
}

// Runner is a Strategy with a background loop: Consumers.Run runs it for as
// long as the consumers run and waits for it to return after ctx ends. Run
// must return once ctx ended and every goroutine it or the strategy's steps
// started has ended.
type Runner interface {
	Run(ctx context.Context)
}

// HealthChecker is a Strategy that can fail the service's liveness
// (Consumers.Health).
type HealthChecker interface {
	Health() error
}

// Consumer describes, to its strategy, the consumer it serves.
type Consumer struct {
	// Name is the consumer's (handler's) name, Topic what it reads, Group its
	// consumer group.
	Name, Topic, Group string
	// DB is the service's database (the inbox's).
	DB     *sql.DB
	Logger *slog.Logger
	// Retry is the stack's in-place retry (a strategy that runs the handler
	// itself retries the same way).
	Retry RetryConfig
	// PoisonSteps are the poison queue's steps (Watermill's PoisonQueue,
	// filtered by GivesUpOn, and the reason code tagged on the poisoned copy),
	// for a strategy that poisons what it does not handle itself.
	PoisonSteps []message.HandlerMiddleware
	// ShuttingDown is closed when the graceful shutdown begins
	// (Consumers.Drain): a step that holds a message lets it go then.
	ShuttingDown <-chan struct{}
	// Handle runs the consumer's handler behind its inbox, in the transaction
	// the message's context carries (sqldb.ContextWithTx) if any, outside the
	// rest of the stack: for a strategy that delivers stored messages itself.
	Handle message.HandlerFunc
}

// GivesUpOn reports whether a strategy may give up on a message that failed
// with err: not for an outage (failure.IsUnavailable) nor for an interrupted
// shutdown (IsInterrupted): those messages are handed back, to be delivered
// again.
func GivesUpOn(err error) bool { return !failure.IsUnavailable(err) && !IsInterrupted(err) }

// RetryableInPlace is the in-place retry's rule of most strategies: every
// error but a permanent one (failure.IsPermanent) or an interrupted one.
func RetryableInPlace(err error) bool { return !failure.IsPermanent(err) && !IsInterrupted(err) }

// Poison is the default strategy: retry in place with backoff and jitter,
// then move the message to the poison topic (Watermill's PoisonQueue, with the
// reason code of its error, failure.MetadataReasonCode) and go on with the
// partition. Progress over order. Outages and interrupted shutdowns are never
// poisoned: those messages come back.
var Poison Strategy = poisonStrategy{}

type poisonStrategy struct{}

func (poisonStrategy) Steps(c Consumer) ([]message.HandlerMiddleware, error) {
	return c.PoisonSteps, nil
}
func (poisonStrategy) Retryable(err error) bool { return RetryableInPlace(err) }

// Block never gives up: retry, nack, get it again, retry..., holding the
// partition until the message succeeds or a person intervenes. Order over
// progress. Permanent errors are retried with the same backoff as others (a
// round of Retry.MaxRetries+1 attempts per delivery, then a nack and a
// redelivery after the subscriber's 100 ms NackResendSleep): without it a
// permanent error would be tried once per delivery, ten times a second,
// forever. Messages behind the held one in its partition wait; other
// partitions flow. Only a fix (deploy, or moving the group's offset) ends it.
// Projections always use Block.
var Block Strategy = blockStrategy{}

type blockStrategy struct{}

func (blockStrategy) Steps(Consumer) ([]message.HandlerMiddleware, error) { return nil, nil }

// Retryable retries every error but an interrupted one, permanent errors
// included: a blocking consumer never gives up on a message, so not retrying a
// permanent error would only skip the backoff.
func (blockStrategy) Retryable(err error) bool { return !IsInterrupted(err) }
