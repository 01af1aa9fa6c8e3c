package consumer

import (
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/pkg/breaker"
	"github.com/onceflow/onceflow/pkg/causation"
	"github.com/onceflow/onceflow/pkg/consumer/delayed"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/msgtrace"
)

// stack returns the middleware of consumer h, outermost first (the drain and
// the consumer span come before it, the inbox after it):
//
//  0. Throttle (Config.Throttle, if on): the delivery waits for its tick.
//  1. Recoverer: a panic becomes an error (and is retried like one).
//  2. CorrelationID: messages a handler returns keep the incoming correlation id.
//  3. The strategy's steps, which decide the fate of a message whose retries
//     are spent (Strategy.Steps; none for Block: the message is nacked and
//     comes back). No step ever gives up on an error for which GivesUpOn is
//     false.
//  4. interruptedByShutdown: an error returned after the message's context
//     ended is marked as interrupted, whatever it says.
//  5. countAttempts: one attempt counter per delivery.
//  6. Retry: up to Retry.MaxRetries retries with exponential backoff and
//     jitter, of the errors the strategy's Retryable accepts.
//  7. attempt: numbers each attempt of the delivery; a retry is told to
//     Hooks.Retried, a failed attempt is an event of the delivery's span and
//     is listed by Consumers.Retrying until the delivery ends.
//  8. The handler timeout (Config.HandlerTimeout): bounds each attempt; an
//     attempt past it fails with ErrHandlerTimeout, an ordinary failure.
//  9. The circuit breaker (Config.Breaker, if on): consecutive outages open
//     it, and while open an attempt fails at once with an outage.
//  10. Recoverer again, so that a panicking handler is retried and then given
//     up on like any failing one instead of being redelivered forever.
func (cs *Consumers) stack(h handler) ([]message.HandlerMiddleware, error) {
	c := cs.config
	s := cs.strategyOf(h)
	poison, err := middleware.PoisonQueueWithFilter(cs.poison, c.PoisonTopic, GivesUpOn)
	if err != nil {
		return nil, err
	}
	steps, err := s.Steps(cs.describe(h, poison))
	if err != nil {
		return nil, err
	}
	stack := append(c.Throttle.middleware(), middleware.Recoverer, middleware.CorrelationID)
	stack = append(stack, steps...)
	stack = append(stack, interruptedByShutdown, cs.countAttempts, c.Retry.Middleware(s.Retryable, cs.wlog), cs.attempt(h.name))
	stack = append(stack, attemptTimeout(c.HandlerTimeout)...)
	stack = append(stack, breaker.Middleware(c.Breaker, "consumer "+h.name, failure.IsUnavailable, cs.wlog)...)
	return append(stack, middleware.Recoverer), nil
}

// describe is consumer h as its strategy sees it; poison is its poison queue
// step.
func (cs *Consumers) describe(h handler, poison message.HandlerMiddleware) Consumer {
	return Consumer{
		Name: h.name, Topic: h.topic, Group: cs.config.ConsumerGroup,
		DB: cs.config.DB, Logger: cs.logger, Retry: cs.config.Retry,
		PoisonSteps:  []message.HandlerMiddleware{poison, tagReasonCode},
		ShuttingDown: cs.drain.shuttingDown,
		Handle:       cs.behindInbox(h),
	}
}

// behindInbox is h's handler behind the inbox, outside the rest of the stack.
func (cs *Consumers) behindInbox(h handler) message.HandlerFunc {
	return cs.inboxMiddleware(middleware.Recoverer(func(msg *message.Message) ([]*message.Message, error) {
		return nil, h.handler(msg)
	}))
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
// advances it. When the delivery ends, it leaves Consumers.Retrying.
func (cs *Consumers) countAttempts(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		defer cs.retrying.ended(msg)
		msg.SetContext(causation.WithAttemptCounter(msg.Context()))
		return h(msg)
	}
}

// attempt sits just inside Retry and numbers each attempt of a delivery (1 =
// first try): an attempt after the first is a retry, told to Hooks.Retried
// (Watermill's OnRetryHook is not used: it is called for failed attempts, the
// last one included, not for retries), and a failed attempt is an event of
// the delivery's span and of Consumers.Retrying. The inbox records the
// number as the causation attempts of the events the handler writes.
func (cs *Consumers) attempt(consumer string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if n, ok := causation.NextAttempt(msg.Context()); ok && n > 1 && cs.config.Hooks.Retried != nil {
				cs.config.Hooks.Retried()
			}
			out, err := h(msg)
			if err != nil {
				n := causation.Attempt(msg.Context())
				msgtrace.FailedAttempt(msg, n, err)
				cs.retrying.failed(consumer, msg, n, err)
			}
			return out, err
		}
	}
}

// poisonOrigin wraps the poison publisher of a consumer group: every poisoned
// message gets failure.MetadataPoisonedGroup, and one poisoned on a delayed
// path names its original Kafka topic and consumer in "topic_poisoned" and
// "handler_poisoned" (instead of the delayed path's table and handler).
type poisonOrigin struct {
	message.Publisher
	group string
	// poisoned is told about each message poisoned; nil: nobody.
	poisoned func(reasonCode string)
}

// Publish implements message.Publisher.
func (p poisonOrigin) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		m.Metadata.Set(failure.MetadataPoisonedGroup, p.group)
		msgtrace.GivenUp(m, "poisoned", m.Metadata.Get(failure.MetadataReasonCode))
		if from := m.Metadata.Get(delayed.MetadataFromTopic); from != "" && m.Metadata.Get(middleware.PoisonedHandlerKey) != "" {
			m.Metadata.Set(middleware.PoisonedTopicKey, from)
			m.Metadata.Set(middleware.PoisonedHandlerKey, m.Metadata.Get(delayed.MetadataHandler))
		}
	}
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	if p.poisoned == nil {
		return nil
	}
	for _, m := range msgs {
		reason := m.Metadata.Get(failure.MetadataReasonCode)
		if !failure.ValidReasonCode(reason) {
			reason = failure.ReasonUnclassified
		}
		p.poisoned(reason)
	}
	return nil
}
