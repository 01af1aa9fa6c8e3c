package messaging

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cenkalti/backoff/v5"
)

// KafkaConfig says how to reach Kafka.
type KafkaConfig struct {
	// Brokers are host:port addresses of bootstrap brokers. Default 127.0.0.1:9092.
	Brokers []string `env:"BROKERS" envSeparator:","`
	// ClientID names this process in the broker's logs and metrics. Default "onceflow".
	ClientID string `env:"CLIENT_ID"`
	// InstanceID, if set, makes this process a static member of its consumer group
	// (KIP-345): restarted with the same id, it gets its partitions back at once
	// instead of waiting for its old session to time out (10 s) and a rebalance.
	// It must be unique per running replica (e.g. the pod or host name); a second
	// process with the same id fences the first. Empty: dynamic membership.
	InstanceID string `env:"INSTANCE_ID"`
}

// Defaults returns c with zero fields set to their defaults.
func (c KafkaConfig) Defaults() KafkaConfig {
	if len(c.Brokers) == 0 {
		c.Brokers = []string{"127.0.0.1:9092"}
	}
	if c.ClientID == "" {
		c.ClientID = "onceflow"
	}
	return c
}

// Validate reports the first invalid field.
func (c KafkaConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: no brokers")
	}
	for _, b := range c.Brokers {
		if b == "" {
			return errors.New("kafka: empty broker address")
		}
	}
	return nil
}

// kafkaVersion caps the protocol versions sarama asks for: the broker line of
// deploy/local/pom.xml, the newest sarama knows (ADR 0055). Each request then
// uses the newest version both sides support.
var kafkaVersion = sarama.V4_3_1_0

// ProducerConfig is the sarama configuration of every producer here: acks from
// all in-sync replicas, idempotent (the broker drops a retried batch it already
// wrote, so producer retries cannot duplicate or reorder), one request in flight
// per broker, and key-hash partitioning.
func (c KafkaConfig) ProducerConfig() *sarama.Config {
	sc := kafka.DefaultSaramaSyncPublisherConfig()
	sc.ClientID = c.ClientID
	sc.Version = kafkaVersion
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Retry.Max = 10
	sc.Producer.Retry.Backoff = 100 * time.Millisecond
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	sc.Net.DialTimeout = 3 * time.Second
	return sc
}

// ConsumerConfig is the sarama configuration of every consumer here. A group that
// has no committed offset starts from the oldest message (sarama's default is the
// newest, which silently skips everything produced before the group first joined).
// Offsets of acknowledged messages are committed every second, so a crash replays
// at most about a second of messages: at-least-once, made exactly-once in effect
// by the Inbox.
func (c KafkaConfig) ConsumerConfig() *sarama.Config {
	sc := kafka.DefaultSaramaSubscriberConfig()
	sc.ClientID = c.ClientID
	sc.Version = kafkaVersion
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = time.Second
	sc.Consumer.Group.Session.Timeout = 10 * time.Second
	sc.Consumer.Group.Heartbeat.Interval = 3 * time.Second
	sc.Consumer.Group.InstanceId = c.InstanceID
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	sc.Net.DialTimeout = 3 * time.Second
	return sc
}

// MetadataKey is the metadata key whose value becomes a message's Kafka key:
// every message with the same key goes to the same partition and is consumed in
// the order it was produced. The outbox also parks rows per key (ADR 22). The
// producers of messages set it (pkg/events sets it to the order id).
const MetadataKey = "partition_key"

// MetadataEventType is the metadata key the tooling (parked rows, poison queue)
// shows as a message's type. Optional.
const MetadataEventType = "event_type"

// Marshaler sets the Kafka message key from the MetadataKey metadata (the
// order id), so all events of one order go to one partition. With requireKey, a
// message without a key is refused (unkeyed events would lose their per-order
// ordering); without it, such a message is sent unkeyed, which the poison queue
// needs for messages that arrived malformed.
func Marshaler(requireKey bool) kafka.MarshalerUnmarshaler {
	return kafka.NewWithPartitioningMarshaler(func(topic string, msg *message.Message) (string, error) {
		key := msg.Metadata.Get(MetadataKey)
		if key == "" && requireKey {
			return "", fmt.Errorf("message %s for %s has no %q metadata", msg.UUID, topic, MetadataKey)
		}
		return key, nil
	})
}

// NewPublisher returns a Kafka publisher for events: keyed by MetadataKey (a
// message without it is refused), synchronous (Publish returns once the
// broker acknowledged every message with acks=all), and connecting on first use.
// While Kafka is unreachable Publish fails, and a later call tries again; Watermill's
// own constructor would instead fail once, at start-up.
func (c KafkaConfig) NewPublisher(logger watermill.LoggerAdapter) message.Publisher {
	return c.newLazyPublisher(true, logger)
}

// NewPoisonPublisher is NewPublisher for poison queues: a message without a key
// (it may have arrived malformed) is sent unkeyed instead of refused.
func (c KafkaConfig) NewPoisonPublisher(logger watermill.LoggerAdapter) message.Publisher {
	return c.newLazyPublisher(false, logger)
}

func (c KafkaConfig) newLazyPublisher(requireKey bool, logger watermill.LoggerAdapter) message.Publisher {
	marshaler := Marshaler(requireKey)
	return &lazyPublisher{newPublisher: func() (message.Publisher, error) {
		return kafka.NewPublisher(kafka.PublisherConfig{
			Brokers:               c.Brokers,
			Marshaler:             marshaler,
			OverwriteSaramaConfig: c.ProducerConfig(),
		}, logger)
	}, newProducer: func() (sarama.SyncProducer, error) {
		return sarama.NewSyncProducer(c.Brokers, c.ProducerConfig())
	}, marshaler: marshaler}
}

// NewSubscriber returns a Kafka consumer-group subscriber whose Subscribe waits,
// retrying with backoff, until Kafka is reachable or ctx ends. Watermill's own
// Subscribe fails at once when no broker answers; once subscribed it reconnects
// by itself.
func (c KafkaConfig) NewSubscriber(consumerGroup string, logger watermill.LoggerAdapter) (message.Subscriber, error) {
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               c.Brokers,
		Unmarshaler:           Marshaler(false),
		OverwriteSaramaConfig: c.ConsumerConfig(),
		ConsumerGroup:         consumerGroup,
		NackResendSleep:       100 * time.Millisecond,
		ReconnectRetrySleep:   time.Second,
	}, logger)
	if err != nil {
		return nil, err
	}
	return retryingSubscriber{Subscriber: sub, logger: logger}, nil
}

// lazyPublisher creates its publisher on the first Publish that can reach Kafka.
type lazyPublisher struct {
	newPublisher func() (message.Publisher, error)
	// newProducer and marshaler serve the batch relay (sendBatch).
	newProducer func() (sarama.SyncProducer, error)
	marshaler   kafka.Marshaler

	mu       sync.Mutex
	pub      message.Publisher
	producer sarama.SyncProducer
	closed   bool
}

// getProducer returns the batch relay's producer, connecting on first use.
func (p *lazyPublisher) getProducer() (sarama.SyncProducer, error) {
	return lazyGet(p, &p.producer, p.newProducer)
}

func (p *lazyPublisher) get() (message.Publisher, error) {
	return lazyGet(p, &p.pub, p.newPublisher)
}

// lazyGet returns *slot, made with mk on first use, unless p is closed.
func lazyGet[T comparable](p *lazyPublisher, slot *T, mk func() (T, error)) (T, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var zero T
	if p.closed {
		return zero, errors.New("kafka publisher closed")
	}
	if *slot == zero {
		v, err := mk()
		if err != nil {
			return zero, fmt.Errorf("connecting to kafka: %w", err)
		}
		*slot = v
	}
	return *slot, nil
}

// Publish implements message.Publisher.
func (p *lazyPublisher) Publish(topic string, msgs ...*message.Message) error {
	pub, err := p.get()
	if err != nil {
		return err
	}
	return pub.Publish(topic, msgs...)
}

// Close implements message.Publisher.
func (p *lazyPublisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed { // the forwarder and the service both close it
		return nil
	}
	p.closed = true
	var errs []error
	if p.producer != nil {
		errs = append(errs, p.producer.Close())
	}
	if p.pub != nil {
		errs = append(errs, p.pub.Close())
	}
	return errors.Join(errs...)
}

type retryingSubscriber struct {
	message.Subscriber
	logger watermill.LoggerAdapter
}

// Subscribe implements message.Subscriber.
func (s retryingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 250 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	return backoff.Retry(ctx, func() (<-chan *message.Message, error) {
		ch, err := s.Subscriber.Subscribe(ctx, topic)
		if err != nil {
			s.logger.Info("kafka not reachable yet, will retry subscribing", watermill.LogFields{"topic": topic, "err": err.Error()})
		}
		return ch, err
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
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
// person purges it (poison purge), never by silently expiring (ADR 0025).
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
func (c KafkaConfig) EnsureTopics(ctx context.Context, topics []TopicSpec) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 250 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		return struct{}{}, c.ensureTopics(topics)
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
	return err
}

func (c KafkaConfig) ensureTopics(topics []TopicSpec) error {
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
				return fmt.Errorf("topic %s partition %d has no leader yet (%v)", md.Name, p.ID, p.Err)
			}
		}
	}
	return nil
}

// ApplyTopicConfigs sets each topic's Config on the existing topic (created
// before the setting existed, or by hand), leaving its other settings alone.
// It tries once and returns every failure; topics without Config are skipped.
func (c KafkaConfig) ApplyTopicConfigs(topics []TopicSpec) error {
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
