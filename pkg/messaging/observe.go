package messaging

import (
	"github.com/onceflow/onceflow/pkg/kafka"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Hooks are told where messaging things happen, so that a metrics adapter
// (pkg/metrics) can count them without this package knowing about it. Every
// field is optional; a nil one is not called. Hooks are called on the hot path
// (inside handlers and the forwarder), so they must be cheap and must not
// block; they never change what happens to a message.
type Hooks struct {
	// Retried is called at the start of each in-place retry of a message
	// (each attempt of a delivery after its first).
	Retried func()
	// Poisoned is called after a message was published to the poison topic,
	// with its public reason code (MetadataReasonCode; ReasonUnclassified if
	// it has no valid one), a bounded set of values.
	Poisoned func(reason string)
	// Duplicate is called when the inbox absorbed a message its consumer group
	// had already processed (the handler did not run).
	Duplicate func()
	// Skipped is called when FailureSkip acknowledged a message without its effect.
	Skipped func()
}

func (h *Hooks) retried() {
	if h != nil && h.Retried != nil {
		h.Retried()
	}
}

func (h *Hooks) poisoned(reason string) {
	if h != nil && h.Poisoned != nil {
		h.Poisoned(reason)
	}
}

func (h *Hooks) duplicate() {
	if h != nil && h.Duplicate != nil {
		h.Duplicate()
	}
}

func (h *Hooks) skipped() {
	if h != nil && h.Skipped != nil {
		h.Skipped()
	}
}

// SetHooks makes the consumers report to h (Retried, Poisoned, Duplicate,
// Skipped). Call before Run.
func (cs *Consumers) SetHooks(h Hooks) { cs.hooks = h }

// OnRouter registers f, called with the consumers' Watermill router once it is
// built and before it runs (e.g. to add Watermill's metrics component). Call
// before Run.
func (cs *Consumers) OnRouter(f func(*message.Router)) { cs.onRouter = append(cs.onRouter, f) }

// Subscriptions lists the consumer group and topic of every registered
// consumer and projection (projections have their own group), in registration
// order, including duplicates if a group reads a topic twice.
func (cs *Consumers) Subscriptions() []kafka.Subscription {
	subs := make([]kafka.Subscription, 0, len(cs.handlers))
	for _, h := range cs.handlers {
		group := cs.config.ConsumerGroup
		if h.projection {
			group += "." + h.name
		}
		subs = append(subs, kafka.Subscription{Group: group, Topic: h.topic})
	}
	return subs
}
