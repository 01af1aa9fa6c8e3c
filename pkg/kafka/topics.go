package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/cenkalti/backoff/v5"
)

// Topics are the Kafka topics a service creates at start. Ensure creates them,
// waiting for Kafka as long as it takes; Created then tells the outbox
// (UnfixableReason) that a refusal of one of them as unknown is not a start-up
// race. Give it to a consumer stack that ensures the topics before it
// subscribes, or call Ensure yourself.
type Topics struct {
	kafka   Config
	specs   []TopicSpec
	logger  *slog.Logger
	created atomic.Bool
}

// NewTopics returns the topics specs on kafka (its zero fields take their defaults).
func NewTopics(kafka Config, logger *slog.Logger, specs ...TopicSpec) *Topics {
	return &Topics{kafka: kafka.Defaults(), specs: specs, logger: logger}
}

// Ensure creates the missing topics (Config.EnsureTopics), retrying until
// Kafka answers or ctx ends (then it returns ctx's error), and applies their
// settings to those that existed (Config.ApplyTopicConfigs; failing to is
// logged, not returned: the service can work without them).
func (t *Topics) Ensure(ctx context.Context) error {
	if err := t.kafka.EnsureTopics(ctx, t.specs); err != nil {
		return err
	}
	t.created.Store(true)
	// Topics created before their settings existed (the poison topics' unlimited
	// retention) get them now.
	if err := t.kafka.ApplyTopicConfigs(t.specs); err != nil {
		t.logger.Warn("could not apply topic settings", "err", err)
	}
	return nil
}

// Created reports whether topic is one of these topics and Ensure succeeded.
func (t *Topics) Created(topic string) bool {
	return t.created.Load() && slices.ContainsFunc(t.specs, func(s TopicSpec) bool { return s.Name == topic })
}

// TopicSpec describes how a topic is created.
type TopicSpec struct {
	Name       string
	Partitions int32
	// Config holds topic-level settings (e.g. "retention.ms"), set when the topic
	// is created and re-applied to an existing topic at each start.
	Config map[string]string
}

// PoisonRetentionMs is the retention of poison topics: -1, unlimited. A
// poisoned message is an unresolved problem; it leaves the topic only when a
// person purges it (poison purge), never by silently expiring.
const PoisonRetentionMs = "-1"

// PoisonTopicSpec is the spec of a poison topic: one partition (small, read by
// people and tools) and unlimited retention (PoisonRetentionMs).
func PoisonTopicSpec(name string) TopicSpec {
	return TopicSpec{Name: name, Partitions: 1, Config: map[string]string{"retention.ms": PoisonRetentionMs}}
}

// EnsureTopics creates the given topics with their partition counts (replication
// factor 1 on a single broker, else 3) and settings (TopicSpec.Config, e.g. the
// poison topics' unlimited retention) if they do not exist yet. Existing topics
// are left alone (see ApplyTopicConfigs). It retries until Kafka answers or ctx ends.
func (c Config) EnsureTopics(ctx context.Context, topics []TopicSpec) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 250 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		return struct{}{}, c.ensureTopics(topics)
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
	return err
}

func (c Config) ensureTopics(topics []TopicSpec) error {
	admin, err := sarama.NewClusterAdmin(c.Brokers, c.ProducerConfig())
	if err != nil {
		return err
	}
	defer admin.Close()
	brokers, _, err := admin.DescribeCluster()
	if err != nil {
		return err
	}
	replication := int16(3)
	if len(brokers) < 3 {
		replication = 1
	}
	for _, t := range topics {
		detail := &sarama.TopicDetail{NumPartitions: t.Partitions, ReplicationFactor: replication}
		if len(t.Config) > 0 {
			detail.ConfigEntries = map[string]*string{}
			for k, v := range t.Config {
				detail.ConfigEntries[k] = &v
			}
		}
		err := admin.CreateTopic(t.Name, detail, false)
		var topicErr *sarama.TopicError
		if errors.As(err, &topicErr) && topicErr.Err == sarama.ErrTopicAlreadyExists {
			continue
		}
		if err != nil {
			return fmt.Errorf("creating topic %s: %w", t.Name, err)
		}
	}
	return topicsVisible(admin, topics)
}

// topicsVisible reports an error until every topic is in the broker's metadata
// with a leader for each partition. Kafka answers CreateTopics once its
// controller has committed the topic; a broker learns of it a moment later, and
// until then a subscription, a produce or a config change for it fails with
// "unknown topic or partition".
func topicsVisible(admin sarama.ClusterAdmin, topics []TopicSpec) error {
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	mds, err := admin.DescribeTopics(names)
	if err != nil {
		return err
	}
	for _, md := range mds {
		if md.Err != sarama.ErrNoError {
			return fmt.Errorf("topic %s is not visible yet: %w", md.Name, md.Err)
		}
		if len(md.Partitions) == 0 {
			return fmt.Errorf("topic %s has no partitions yet", md.Name)
		}
		for _, p := range md.Partitions {
			if p.Err != sarama.ErrNoError || p.Leader < 0 {
				return fmt.Errorf("topic %s partition %d has no leader yet (%w)", md.Name, p.ID, p.Err)
			}
		}
	}
	return nil
}

// ApplyTopicConfigs sets each topic's Config on the existing topic (created
// before the setting existed, or by hand), leaving its other settings alone.
// It tries once and returns every failure; topics without Config are skipped.
func (c Config) ApplyTopicConfigs(topics []TopicSpec) error {
	var errs []error
	var admin sarama.ClusterAdmin
	for _, t := range topics {
		if len(t.Config) == 0 {
			continue
		}
		if admin == nil {
			a, err := sarama.NewClusterAdmin(c.Brokers, c.ProducerConfig())
			if err != nil {
				return err
			}
			defer a.Close()
			admin = a
		}
		if err := applyTopicConfig(admin, t); err != nil {
			errs = append(errs, fmt.Errorf("setting %v on topic %s: %w", t.Config, t.Name, err))
		}
	}
	return errors.Join(errs...)
}

func applyTopicConfig(admin sarama.ClusterAdmin, t TopicSpec) error {
	entries := map[string]sarama.IncrementalAlterConfigsEntry{}
	for k, v := range t.Config {
		entries[k] = sarama.IncrementalAlterConfigsEntry{Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &v}
	}
	return admin.IncrementalAlterConfig(sarama.TopicResource, t.Name, entries, false)
}
