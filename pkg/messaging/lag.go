package messaging

import (
	"fmt"
	"sync"

	"github.com/IBM/sarama"
)

// Lag is how many messages of one partition a consumer group has not
// committed yet: the partition's high watermark minus the group's committed
// offset (minus the partition's oldest offset while the group has committed
// nothing there).
type Lag struct {
	Group, Topic string
	Partition    int32
	Messages     int64
}

// LagReader reads consumer groups' lag from Kafka over one long-lived client
// (connections are kept between samples). Safe for concurrent use; Close it.
type LagReader struct {
	config KafkaConfig

	mu     sync.Mutex
	client sarama.Client
	admin  sarama.ClusterAdmin
}

// NewLagReader returns a LagReader for the brokers of config. It connects on
// the first Read, so Kafka being down when it is made is not an error.
func NewLagReader(config KafkaConfig) *LagReader { return &LagReader{config: config.Defaults()} }

// Read returns the lag of every partition of every subscription. Per
// subscription it costs one OffsetFetch request (the group's committed
// offsets of all the topic's partitions), plus one ListOffsets per partition
// for the high watermark (sarama asks each partition's leader). It fails if
// Kafka does not answer; the connection is then rebuilt on the next Read.
func (r *LagReader) Read(subs []Subscription) ([]Lag, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client == nil || r.client.Closed() {
		client, err := sarama.NewClient(r.config.Brokers, r.config.ConsumerConfig())
		if err != nil {
			return nil, fmt.Errorf("lag: connecting to kafka: %w", err)
		}
		admin, err := sarama.NewClusterAdminFromClient(client)
		if err != nil {
			_ = client.Close()
			return nil, fmt.Errorf("lag: kafka admin: %w", err)
		}
		r.client, r.admin = client, admin
	}
	var lags []Lag
	seen := map[Subscription]bool{}
	for _, s := range subs {
		if seen[s] {
			continue
		}
		seen[s] = true
		l, err := r.read(s)
		if err != nil {
			r.reset()
			return nil, err
		}
		lags = append(lags, l...)
	}
	return lags, nil
}

func (r *LagReader) read(s Subscription) ([]Lag, error) {
	partitions, err := r.client.Partitions(s.Topic)
	if err != nil {
		return nil, fmt.Errorf("lag: partitions of %s: %w", s.Topic, err)
	}
	committed, err := r.admin.ListConsumerGroupOffsets(s.Group, map[string][]int32{s.Topic: partitions})
	if err != nil {
		return nil, fmt.Errorf("lag: offsets of group %s: %w", s.Group, err)
	}
	if committed.Err != sarama.ErrNoError {
		return nil, fmt.Errorf("lag: offsets of group %s: %w", s.Group, committed.Err)
	}
	lags := make([]Lag, 0, len(partitions))
	for _, p := range partitions {
		high, err := r.client.GetOffset(s.Topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("lag: high watermark of %s/%d: %w", s.Topic, p, err)
		}
		from := int64(-1)
		if b := committed.GetBlock(s.Topic, p); b != nil && b.Err == sarama.ErrNoError {
			from = b.Offset
		}
		if from < 0 { // nothing committed: the group starts at the oldest message (ConsumerConfig)
			if from, err = r.client.GetOffset(s.Topic, p, sarama.OffsetOldest); err != nil {
				return nil, fmt.Errorf("lag: oldest offset of %s/%d: %w", s.Topic, p, err)
			}
		}
		lags = append(lags, Lag{Group: s.Group, Topic: s.Topic, Partition: p, Messages: max(high-from, 0)})
	}
	return lags, nil
}

// reset drops the connection after a failure.
func (r *LagReader) reset() {
	if r.admin != nil {
		_ = r.admin.Close() // closes the client too
	}
	r.client, r.admin = nil, nil
}

// Close closes the connection, if any.
func (r *LagReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	if r.admin != nil {
		err = r.admin.Close()
	}
	r.client, r.admin = nil, nil
	return err
}
