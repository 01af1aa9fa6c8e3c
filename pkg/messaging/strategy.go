package messaging

import (
	"fmt"
	"slices"

	"github.com/onceflow/onceflow/pkg/breaker"
	"github.com/onceflow/onceflow/pkg/causation"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/msgtrace"

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
	// over progress. Permanent errors are retried with the same backoff as
	// others (a round of Retry.MaxRetries+1 attempts per delivery, then a nack
	// and a redelivery after the subscriber's 100 ms NackResendSleep): without
	// it a permanent error would be tried once per delivery, ten times a second,
	// forever. Messages behind the held one in its partition wait; other
	// partitions flow. Only a fix (deploy, or moving the group's offset) ends it.
	FailureBlock FailureMode = "block"
	// FailureParkKey (ADR 33): a message given up on after its retries is
	// parked, with its reason (public ReasonCode and full error), as the HEAD
	// of its key (Kafka key, the order id) in a dead-letter table of the
	// consumer's own database, and acknowledged; every later message of that
	// key (same consumer group and handler) is parked behind it without running
	// the handler, while other keys flow. Replaying the key (`poison keys
	// replay`, a mark the running consumers' poller picks up every
	// ParkKey.PollInterval) releases its queue in order through the inbox and
	// the handler; a message that fails again stops the release and becomes the
	// new head. Discarding the head lets the rest of the key flow. Failure
	// modes: an error reading or writing the parked tables nacks the message
	// (delivered again); an outage or a stop never parks (givesUpOn). A key's
	// queue waits for an operator for as long as it takes: alert on
	// `poison keys list`.
	FailureParkKey FailureMode = "park-key"
	// FailureSkip ("log and skip"): retry in place, then log the message at
	// ERROR with its full context (handler, topic, partition, offset, key,
	// message id, event type, correlation id, attempts, reason code, error;
	// attribute alert=message_skipped), count it (Consumers.Skipped) and
	// acknowledge it. The message's effect is lost on purpose: pick it only for
	// effects that can be lost or redone from the log. Outages and interrupted
	// stops are never skipped: those messages come back.
	FailureSkip FailureMode = "skip"
	// FailureStop: retry in place like poison, then give up on the whole
	// consumer: the failing message is not acknowledged, every partition of the
	// consumer holds its next message unprocessed, Consumers.Health (the
	// service's /healthz and /readyz) fails naming the consumer, the message and
	// the reason, so that an orchestrator restarts the process or an operator
	// looks. After a restart the message comes again; if it still fails, the
	// consumer stops again. Outages and stops never stop it (givesUpOn); a
	// graceful stop releases the held messages unacknowledged (ADR 35).
	FailureStop FailureMode = "stop"
	// FailurePause: on an outage (IsUnavailable: the database down) the
	// consumer pauses instead of retrying each message: every partition holds
	// its message unacknowledged at a gate, one prober pings the database with
	// backoff (Config.Pause), and when it answers the held messages are
	// handled again, in order. Outages are not retried in place. Any other
	// failure is retried and poisoned as with FailurePoison. A graceful stop
	// releases the held messages unacknowledged (ADR 35).
	FailurePause FailureMode = "pause"
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
var FailureModes = []FailureMode{FailurePoison, FailureBlock, FailureSkip, FailureStop, FailureRequeue, FailureParkKey, FailurePause}

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
//  0. Throttle (Config.Throttle, if on): the delivery waits for its tick.
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
//     permanent errors (IsPermanent) and interrupted ones are not retried
//     (FailureBlock retries permanent ones too, see block.go).
//  6. attempt: numbers each attempt of the delivery; a retry is told to
//     Hooks.Retried, a failed attempt is an event of the delivery's span.
//  7. The handler timeout (Config.HandlerTimeout): bounds each attempt; an
//     attempt past it fails with ErrHandlerTimeout, an ordinary failure.
//  8. Recoverer again, so that a panicking handler is retried and then given up
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
	stack := append(c.Throttle.throttle(), middleware.Recoverer, middleware.CorrelationID)
	retryable := retryableInPlace
	switch mode {
	case FailurePoison:
		poisonMW, err := cs.poisonStep()
		if err != nil {
			return nil, err
		}
		stack = append(stack, poisonMW, tagReasonCode)
	case FailureBlock:
		retryable = retryableWhenBlocking
	case FailureParkKey:
		stack = append(stack, cs.parkKeyStep(h))
	case FailureSkip:
		stack = append(stack, cs.skipStep)
	case FailureStop:
		stack = append(stack, cs.stopStep(h.name))
	case FailurePause:
		poisonMW, err := cs.poisonStep()
		if err != nil {
			return nil, err
		}
		stack = append(stack, poisonMW, tagReasonCode, cs.pauseStep(h.name))
		retryable = retryableWhenPausing
	case FailureRequeue:
		poisonMW, err := cs.poisonStep()
		if err != nil {
			return nil, err
		}
		stack = append(stack, poisonMW, tagReasonCode, cs.requeueStep(h))
	default:
		return nil, mode.Validate()
	}
	stack = append(stack, interruptedByStop, countAttempts, cs.retry(retryable), cs.attempt)
	stack = append(stack, attemptTimeout(c.HandlerTimeout)...)
	stack = append(stack, cs.breakerStep(h.name)...) // ADR 35; nothing when disabled
	return append(stack, middleware.Recoverer), nil
}

// givesUpOn reports whether a strategy may give up on a message that failed
// with err: not for an outage nor for an interrupted stop.
func givesUpOn(err error) bool { return !failure.IsUnavailable(err) && !IsInterrupted(err) }

// poisonStep is FailurePoison's step: Watermill's PoisonQueue, filtered by givesUpOn.
func (cs *Consumers) poisonStep() (message.HandlerMiddleware, error) {
	return middleware.PoisonQueueWithFilter(cs.poison, cs.config.PoisonTopic, givesUpOn)
}

// retryableInPlace says which errors the in-place retry retries: not permanent
// ones, not interrupted ones.
func retryableInPlace(err error) bool { return !failure.IsPermanent(err) && !IsInterrupted(err) }

// retryableWhenPausing is FailurePause's rule: as retryableInPlace, but an
// outage is not retried in place either (the consumer pauses instead).
func retryableWhenPausing(err error) bool {
	return retryableInPlace(err) && !failure.IsUnavailable(err)
}

// retry is the in-place retry: exponential backoff with jitter, bounded by
// Retry.MaxRetries; errors for which retryable is false are not retried.
func (cs *Consumers) retry(retryable func(error) bool) message.HandlerMiddleware {
	r := cs.config.Retry
	return middleware.Retry{
		MaxRetries:          max(r.MaxRetries, 0),
		InitialInterval:     r.InitialInterval,
		MaxInterval:         r.MaxInterval,
		Multiplier:          r.Multiplier,
		RandomizationFactor: r.RandomizationFactor,
		ResetContextOnRetry: true,
		ShouldRetry:         func(p middleware.RetryParams) bool { return retryable(p.Err) },
		Logger:              cs.wlog,
	}.Middleware
}

// tagReasonCode sets failure.MetadataReasonCode on a message whose handler
// failed with an error that the poison queue will take (not an outage), so
// that the poisoned copy carries its public code.
func tagReasonCode(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if err != nil && !failure.IsUnavailable(err) {
			msg.Metadata.Set(failure.MetadataReasonCode, failure.ReasonCode(err))
		}
		return out, err
	}
}

// countAttempts sits just outside Retry: it gives every delivery one attempt
// counter that survives Retry's context resets; cs.attempt, just inside Retry,
// advances it.
func countAttempts(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		msg.SetContext(causation.WithAttemptCounter(msg.Context()))
		return h(msg)
	}
}

// attempt sits just inside Retry and numbers each attempt of a delivery (1 =
// first try): an attempt after the first is a retry, told to Hooks.Retried
// (Watermill's OnRetryHook is not used: it is called for failed attempts, the
// last one included, not for retries), and a failed attempt is an event of
// the delivery's span. The inbox records the number as the causation attempts
// of the events the handler writes.
func (cs *Consumers) attempt(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if n, ok := causation.NextAttempt(msg.Context()); ok && n > 1 {
			cs.hooks.retried()
		}
		out, err := h(msg)
		if err != nil {
			msgtrace.FailedAttempt(msg, causation.Attempt(msg.Context()), err)
		}
		return out, err
	}
}

// breakerStep is the consumer's circuit breaker (nil when disabled): inside
// Retry, around each attempt. Consecutive outages (IsUnavailable) open it;
// while open, attempts fail at once with an error IsUnavailable recognises, so
// no strategy gives up on the message.
func (cs *Consumers) breakerStep(name string) []message.HandlerMiddleware {
	return breaker.Middleware(cs.config.Breaker, "consumer "+name, failure.IsUnavailable, cs.wlog)
}
