package messaging

import (
	"fmt"
	"slices"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// FailureMode is a consumer's failure strategy: what it does with a message
// whose in-place retries are spent (ADR 14 and 31, docs/strategies.md compares
// them under the same faults). Every consumer of a service uses
// Config.FailureMode unless Config.FailureModes names another for it.
type FailureMode string

// The failure strategies.
const (
	// FailurePoison (the default): retry in place with backoff and jitter, then
	// move the message to the poison topic and go on with the partition.
	// Progress over order.
	FailurePoison FailureMode = "poison"
	// FailureBlock: never give up; retry, nack, get it again, retry..., holding
	// the partition until the message succeeds or a person intervenes. Order
	// over progress.
	FailureBlock FailureMode = "block"
	// FailureRequeue: retry in place, then store the message on the consumer's
	// delayed path (a table in the service's own database, ADR 32) and go on
	// with the partition; the consumer gets it again after a growing delay
	// (REQUEUE_INITIAL_DELAY, ×REQUEUE_MULTIPLIER, up to REQUEUE_MAX_DELAY),
	// through its whole stack, and only this consumer group sees it. After
	// REQUEUE_MAX_REQUEUES requeues it is poisoned, with a reason that says so
	// and the last error. Permanent errors are poisoned at once; outages and
	// stops are never requeued (the message is nacked). If the message cannot
	// be stored, an outage nacks it and any other failure poisons it. Progress
	// over order, with automatic recovery from bugs that heal within the delays.
	FailureRequeue FailureMode = "requeue"
)

// FailureModes lists every failure strategy a consumer can be given.
var FailureModes = []FailureMode{FailurePoison, FailureBlock, FailureRequeue}

// Validate reports whether m is one of FailureModes.
func (m FailureMode) Validate() error {
	if !slices.Contains(FailureModes, m) {
		return fmt.Errorf("failure mode %q is not one of %v", m, FailureModes)
	}
	return nil
}

// modeOf returns the failure strategy of the consumer named name.
func (c Config) modeOf(name string) FailureMode {
	if m, ok := c.FailureModes[name]; ok {
		return m
	}
	return c.FailureMode
}

// stack returns the middleware of consumer h, outermost first (the drain comes
// before it, the inbox after it):
//
//  1. Recoverer: a panic becomes an error (and is retried like one).
//  2. CorrelationID: messages a handler returns keep the incoming correlation id.
//  3. The strategy's step, which decides the fate of a message whose retries
//     are spent (nothing for FailureBlock: the message is nacked and comes
//     back). FailurePoison's step is Watermill's PoisonQueue: it sends the
//     message to the poison topic with MetadataReasonCode, a public code for
//     the error (ReasonCode), next to the full error text, and acknowledges the
//     original, so one bad message does not stop its partition. No step ever
//     gives up on an error for which IsUnavailable is true (an outage is not
//     the message's fault: the message is nacked and delivered again) or
//     IsInterrupted is true (a stop interrupted the work, ADR 24).
//  4. interruptedByStop: an error returned after the message's context ended
//     is marked as interrupted, whatever it says.
//  5. Retry: up to Retry.MaxRetries retries with exponential backoff and jitter;
//     permanent errors (IsPermanent) and interrupted ones are not retried.
//  6. Recoverer again, so that a panicking handler is retried and then given up
//     on like any failing one instead of being redelivered forever.
//
// Projections always use FailureBlock: they accept every message, so only an
// outage can stop them, and they must not skip one.
func (cs *Consumers) stack(h consumer) ([]message.HandlerMiddleware, error) {
	c := cs.config
	mode := c.modeOf(h.name)
	if h.projection {
		mode = FailureBlock
	}
	stack := []message.HandlerMiddleware{middleware.Recoverer, middleware.CorrelationID}
	switch mode {
	case FailurePoison:
		poisonMW, err := cs.poisonStep()
		if err != nil {
			return nil, err
		}
		stack = append(stack, poisonMW, tagReasonCode)
	case FailureBlock:
	case FailureRequeue:
		poisonMW, err := cs.poisonStep()
		if err != nil {
			return nil, err
		}
		stack = append(stack, poisonMW, tagReasonCode, cs.requeueStep(h))
	default:
		return nil, mode.Validate()
	}
	return append(stack, interruptedByStop, countAttempts, cs.retry(), middleware.Recoverer), nil
}

// givesUpOn reports whether a strategy may give up on a message that failed
// with err: not for an outage nor for an interrupted stop.
func givesUpOn(err error) bool { return !IsUnavailable(err) && !IsInterrupted(err) }

// poisonStep is FailurePoison's step: Watermill's PoisonQueue, filtered by givesUpOn.
func (cs *Consumers) poisonStep() (message.HandlerMiddleware, error) {
	return middleware.PoisonQueueWithFilter(cs.poison, cs.config.PoisonTopic, givesUpOn)
}

// retry is the in-place retry: exponential backoff with jitter, bounded by
// Retry.MaxRetries; permanent and interrupted errors are not retried.
func (cs *Consumers) retry() message.HandlerMiddleware {
	r := cs.config.Retry
	return middleware.Retry{
		MaxRetries:          max(r.MaxRetries, 0),
		InitialInterval:     r.InitialInterval,
		MaxInterval:         r.MaxInterval,
		Multiplier:          r.Multiplier,
		RandomizationFactor: r.RandomizationFactor,
		ResetContextOnRetry: true,
		ShouldRetry:         func(p middleware.RetryParams) bool { return !IsPermanent(p.Err) && !IsInterrupted(p.Err) },
		Logger:              cs.wlog,
	}.Middleware
}
