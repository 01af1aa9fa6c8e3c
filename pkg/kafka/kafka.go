package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cenkalti/backoff/v5"
	"github.com/eapache/go-resiliency/breaker"
)

// Config says how to reach Kafka.
type Config struct {
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
func (c Config) Defaults() Config {
	if len(c.Brokers) == 0 {
		c.Brokers = []string{"127.0.0.1:9092"}
	}
	if c.ClientID == "" {
		c.ClientID = "onceflow"
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
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

// protocolVersion caps the protocol versions sarama asks for: the broker line
// of deploy/local/pom.xml, the newest sarama knows (ADR 0055). Each request
// then uses the newest version both sides support.
func protocolVersion() sarama.KafkaVersion { return sarama.V4_3_1_0 }

// ProducerConfig is the sarama configuration of every producer here: acks from
// all in-sync replicas, idempotent (the broker drops a retried batch it already
// wrote, so producer retries cannot duplicate or reorder), one request in flight
// per broker, and key-hash partitioning.
func (c Config) ProducerConfig() *sarama.Config {
	sc := wkafka.DefaultSaramaSyncPublisherConfig()
	sc.ClientID = c.ClientID
	sc.Version = protocolVersion()
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
func (c Config) ConsumerConfig() *sarama.Config {
	sc := wkafka.DefaultSaramaSubscriberConfig()
	sc.ClientID = c.ClientID
	sc.Version = protocolVersion()
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
// the order it was produced. The outbox keeps the order of each key's rows by
// it. The producers of messages set it (pkg/events sets it to the order id).
const MetadataKey = "partition_key"

// MetadataEventType is the metadata key the tooling (parked rows, poison queue)
// shows as a message's type. Optional.
const MetadataEventType = "event_type"

// Marshaler sets the Kafka message key from the MetadataKey metadata (the
// order id), so all events of one order go to one partition. With requireKey, a
// message without a key is refused (unkeyed events would lose their per-order
// ordering); without it, such a message is sent unkeyed, which the poison queue
// needs for messages that arrived malformed.
func Marshaler(requireKey bool) wkafka.MarshalerUnmarshaler {
	return wkafka.NewWithPartitioningMarshaler(func(topic string, msg *message.Message) (string, error) {
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
func (c Config) NewPublisher(logger watermill.LoggerAdapter) message.Publisher {
	return c.newLazyPublisher(true, logger)
}

// NewPoisonPublisher is NewPublisher for poison queues: a message without a key
// (it may have arrived malformed) is sent unkeyed instead of refused.
func (c Config) NewPoisonPublisher(logger watermill.LoggerAdapter) message.Publisher {
	return c.newLazyPublisher(false, logger)
}

func (c Config) newLazyPublisher(requireKey bool, logger watermill.LoggerAdapter) message.Publisher {
	marshaler := Marshaler(requireKey)
	return &lazyPublisher{newPublisher: func() (message.Publisher, error) {
		return wkafka.NewPublisher(wkafka.PublisherConfig{
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
func (c Config) NewSubscriber(consumerGroup string, logger watermill.LoggerAdapter) (message.Subscriber, error) {
	sub, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{
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
	// newProducer and marshaler serve PublishBatch.
	newProducer func() (sarama.SyncProducer, error)
	marshaler   wkafka.Marshaler

	mu       sync.Mutex
	pub      message.Publisher
	producer sarama.SyncProducer
	closed   bool
}

// getProducer returns PublishBatch's producer, connecting on first use.
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

// ErrNotSent is the error PublishBatch reports for the messages of a batch it
// did not try to send because an earlier one could not be (a message that
// does not marshal, e.g. one without a key).
var ErrNotSent = errors.New("not sent: an earlier message of the batch was refused")

// PublishBatch sends msgs[i] to topics[i], every one with one synchronous
// sarama SyncProducer.SendMessages (acks=all, idempotent: ProducerConfig),
// created on first use. It returns nil if Kafka acknowledged all of them,
// else one error per message: nil for each acknowledged, Kafka's refusal for
// each refused, ErrNotSent for each not tried. The outbox's batch relay finds
// it by this signature.
func (p *lazyPublisher) PublishBatch(topics []string, msgs []*message.Message) []error {
	errs := make([]error, len(msgs))
	all := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	prod, err := p.getProducer()
	if err != nil {
		return all(err)
	}
	pms := make([]*sarama.ProducerMessage, len(msgs))
	for i, m := range msgs {
		pm, err := p.marshaler.Marshal(topics[i], m)
		if err != nil { // nothing is sent
			all(ErrNotSent)
			errs[i] = err
			return errs
		}
		pm.Metadata = i
		pms[i] = pm
	}
	err = prod.SendMessages(pms)
	if err == nil {
		return nil
	}
	breakerOpen := errors.Is(err, breaker.ErrBreakerOpen)
	var perrs sarama.ProducerErrors
	if !errors.As(err, &perrs) {
		if breakerOpen {
			p.dropProducer(prod)
		}
		return all(err)
	}
	mapped := false
	for _, pe := range perrs {
		if i, ok := pe.Msg.Metadata.(int); ok && i >= 0 && i < len(errs) && pe.Err != nil {
			errs[i], mapped = pe.Err, true
		}
		breakerOpen = breakerOpen || errors.Is(pe.Err, breaker.ErrBreakerOpen)
	}
	if breakerOpen {
		p.dropProducer(prod)
	}
	if !mapped {
		return all(err)
	}
	return errs
}

// dropProducer forgets prod after its circuit breakers refused a batch, so
// that the next PublishBatch connects a new producer. Sarama's producer keeps
// a breaker per topic and per partition, fixed at 3 failures and 10 s open
// (not configurable, IBM/sarama#961): a producer kept through an outage
// refuses batches for up to 10 s after Kafka is back. A new one starts with
// closed breakers, and connecting it fails at once while Kafka is down.
func (p *lazyPublisher) dropProducer(prod sarama.SyncProducer) {
	p.mu.Lock()
	if p.producer != prod { // already dropped
		p.mu.Unlock()
		return
	}
	p.producer = nil
	p.mu.Unlock()
	_ = prod.Close() // it has nothing in flight: SendMessages returned
}

// Position returns where a consumed message sits in Kafka (partition,
// offset) and the broker's timestamp; ok is false for a message that did not
// come from Kafka.
func Position(msg *message.Message) (partition int32, offset int64, at time.Time, ok bool) {
	ctx := msg.Context()
	partition, ok1 := wkafka.MessagePartitionFromCtx(ctx)
	offset, ok2 := wkafka.MessagePartitionOffsetFromCtx(ctx)
	at, _ = wkafka.MessageTimestampFromCtx(ctx)
	return partition, offset, at, ok1 && ok2
}

// Why Kafka refuses a record for good (UnfixableReason): sending the same
// record again can never succeed.
const (
	// RefusedTooLarge: the record is too large (MESSAGE_TOO_LARGE,
	// RECORD_LIST_TOO_LARGE, or sarama's own Producer.MaxMessageBytes check).
	RefusedTooLarge = "message_too_large"
	// RefusedInvalidRecord: the broker refused the record itself
	// (CORRUPT_MESSAGE, INVALID_RECORD).
	RefusedInvalidRecord = "invalid_record"
	// RefusedInvalidTopic: the destination topic name is not a legal topic name.
	RefusedInvalidTopic = "invalid_topic"
	// RefusedUnknownTopic: the destination topic does not exist although it
	// was created (a topic deleted behind the service's back, or one it does
	// not own). Before the topics are created, unknown topic is a start-up
	// condition and is retried.
	RefusedUnknownTopic = "unknown_topic"
)

// UnfixableReason classifies an error of a Kafka publish: one of the Refused*
// reasons if sending the same record again can never succeed, or "" if it may
// (broker down, leader moving, timeouts, anything not listed). topicCreated
// reports whether the destination topic is known to exist (Topics.Created), so
// that UNKNOWN_TOPIC_OR_PARTITION counts only after that (nil: never).
func UnfixableReason(err error, topic string, topicCreated func(topic string) bool) string {
	var kerr sarama.KError
	if !errors.As(err, &kerr) {
		return ""
	}
	switch kerr {
	case sarama.ErrMessageSizeTooLarge, sarama.ErrMessageSetSizeTooLarge:
		return RefusedTooLarge
	case sarama.ErrInvalidMessage, sarama.ErrInvalidRecord:
		return RefusedInvalidRecord
	case sarama.ErrInvalidTopic:
		return RefusedInvalidTopic
	case sarama.ErrUnknownTopicOrPartition:
		if topicCreated != nil && topicCreated(topic) {
			return RefusedUnknownTopic
		}
	}
	return ""
}
