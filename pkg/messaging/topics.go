package messaging

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
)

// Topics are the Kafka topics a service creates at start. Ensure creates them,
// waiting for Kafka as long as it takes; Created then tells the outbox's
// parking (Outbox.SetTopics) that a refusal of one of them as unknown is not a
// start-up race. Give it to Consumers, whose Run ensures the topics before it
// subscribes, or call Ensure yourself.
type Topics struct {
	kafka   KafkaConfig
	specs   []TopicSpec
	logger  *slog.Logger
	created atomic.Bool
}

// NewTopics returns the topics specs on kafka (its zero fields take their defaults).
func NewTopics(kafka KafkaConfig, logger *slog.Logger, specs ...TopicSpec) *Topics {
	return &Topics{kafka: kafka.Defaults(), specs: specs, logger: logger}
}

// Ensure creates the missing topics (KafkaConfig.EnsureTopics), retrying until
// Kafka answers or ctx ends (then it returns ctx's error), and applies their
// settings to those that existed (KafkaConfig.ApplyTopicConfigs; failing to is
// logged, not returned: the service can work without them).
func (t *Topics) Ensure(ctx context.Context) error {
	if err := t.kafka.EnsureTopics(ctx, t.specs); err != nil {
		return err
	}
	t.created.Store(true)
	// Topics created before their settings existed (the poison topics' unlimited
	// retention, ADR 0025) get them now.
	if err := t.kafka.ApplyTopicConfigs(t.specs); err != nil {
		t.logger.Warn("could not apply topic settings", "err", err)
	}
	return nil
}

// Created reports whether topic is one of these topics and Ensure succeeded.
func (t *Topics) Created(topic string) bool {
	return t.created.Load() && slices.ContainsFunc(t.specs, func(s TopicSpec) bool { return s.Name == topic })
}
