package kafka

import (
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
)

// Subscription is one consumer group reading one topic.
type Subscription struct {
	Group, Topic string
}

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
// (connections are kept between samples). Safe for concurrent use (reads run
// one at a time); Close it.
type LagReader struct {
	config Config

	readMu sync.Mutex // one Read at a time
	mu     sync.Mutex // guards the fields below; never held while talking to Kafka
	client sarama.Client
	admin  sarama.ClusterAdmin
	closed bool
}

// errLagReaderClosed is returned by Read after Close.
var errLagReaderClosed = errors.New("lag: reader closed")

// NewLagReader returns a LagReader for the brokers of config. It connects on
// the first Read, so Kafka being down when it is made is not an error.
func NewLagReader(config Config) *LagReader { return &LagReader{config: config.Defaults()} }

// Read returns the lag of every partition of every subscription. Per
// subscription it costs one OffsetFetch request (the group's committed
// offsets of all the topic's partitions), plus one ListOffsets per partition
// for the high watermark (sarama asks each partition's leader). It fails if
// Kafka does not answer; the connection is then rebuilt on the next Read.
func (r *LagReader) Read(subs []Subscription) ([]Lag, error) {
	r.readMu.Lock()
	defer r.readMu.Unlock()
	client, admin, err := r.conn()
	if err != nil {
		return nil, err
	}
	var lags []Lag
	seen := map[Subscription]bool{}
	for _, s := range subs {
		if seen[s] {
			continue
		}
		seen[s] = true
		l, err := read(client, admin, s)
		if err != nil {
			r.reset(admin)
			return nil, err
		}
		lags = append(lags, l...)
	}
	return lags, nil
}

// conn returns the kept connection, connecting first if there is none. The
// connection is made without holding r.mu, so Close never waits for a broker
// that does not answer (a graceful stop closes the reader).
func (r *LagReader) conn() (sarama.Client, sarama.ClusterAdmin, error) {
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return nil, nil, errLagReaderClosed
	case r.client != nil && !r.client.Closed():
		client, admin := r.client, r.admin
		r.mu.Unlock()
		return client, admin, nil
	}
	r.mu.Unlock()
	client, err := sarama.NewClient(r.config.Brokers, r.config.ConsumerConfig())
	if err != nil {
		return nil, nil, fmt.Errorf("lag: connecting to kafka: %w", err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, nil, fmt.Errorf("lag: kafka admin: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		_ = admin.Close() // closes the client too
		return nil, nil, errLagReaderClosed
	}
	r.client, r.admin = client, admin
	return client, admin, nil
}

// read returns the lag of each partition of s.Topic for s.Group.
func read(client sarama.Client, admin sarama.ClusterAdmin, s Subscription) ([]Lag, error) {
	partitions, err := client.Partitions(s.Topic)
	if err != nil {
		return nil, fmt.Errorf("lag: partitions of %s: %w", s.Topic, err)
	}
	committed, err := admin.ListConsumerGroupOffsets(s.Group, map[string][]int32{s.Topic: partitions})
	if err != nil {
		return nil, fmt.Errorf("lag: offsets of group %s: %w", s.Group, err)
	}
	if committed.Err != sarama.ErrNoError {
		return nil, fmt.Errorf("lag: offsets of group %s: %w", s.Group, committed.Err)
	}
	lags := make([]Lag, 0, len(partitions))
	for _, p := range partitions {
		high, err := client.GetOffset(s.Topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("lag: high watermark of %s/%d: %w", s.Topic, p, err)
		}
		from := int64(-1)
		if b := committed.GetBlock(s.Topic, p); b != nil && b.Err == sarama.ErrNoError {
			from = b.Offset
		}
		if from < 0 { // nothing committed: the group starts at the oldest message (ConsumerConfig)
			if from, err = client.GetOffset(s.Topic, p, sarama.OffsetOldest); err != nil {
				return nil, fmt.Errorf("lag: oldest offset of %s/%d: %w", s.Topic, p, err)
			}
		}
		lags = append(lags, Lag{Group: s.Group, Topic: s.Topic, Partition: p, Messages: max(high-from, 0)})
	}
	return lags, nil
}

// reset drops the connection admin after a failure (unless it was replaced
// or closed meanwhile).
func (r *LagReader) reset(admin sarama.ClusterAdmin) {
	r.mu.Lock()
	if r.admin != admin {
		r.mu.Unlock()
		return
	}
	r.client, r.admin = nil, nil
	r.mu.Unlock()
	_ = admin.Close() // closes the client too
}

// Close closes the connection, if any, without waiting for a Read in
// progress (which then fails); later Reads fail.
func (r *LagReader) Close() error {
	r.mu.Lock()
	admin := r.admin
	r.client, r.admin, r.closed = nil, nil, true
	r.mu.Unlock()
	if admin == nil {
		return nil
	}
	return admin.Close()
}

// GroupPosition is where a consumer group stands on one partition.
type GroupPosition struct {
	// Committed is the group's committed offset: the next message it reads
	// there (-1: it has committed nothing there).
	Committed int64
	// Members is how many live members the group has; State is Kafka's name
	// for the group's state (Stable, PreparingRebalance, Empty, Dead, ...).
	Members int
	State   string
}

// Position returns where group stands on partition of topic: one
// OffsetFetch and one DescribeGroups request. It fails if Kafka does not
// answer; the connection is then rebuilt on the next call.
func (r *LagReader) Position(group, topic string, partition int32) (GroupPosition, error) {
	r.readMu.Lock()
	defer r.readMu.Unlock()
	_, admin, err := r.conn()
	if err != nil {
		return GroupPosition{}, err
	}
	pos, err := position(admin, group, topic, partition)
	if err != nil {
		r.reset(admin)
	}
	return pos, err
}

func position(admin sarama.ClusterAdmin, group, topic string, partition int32) (GroupPosition, error) {
	committed, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {partition}})
	if err == nil && committed.Err != sarama.ErrNoError {
		err = committed.Err
	}
	if err != nil {
		return GroupPosition{}, fmt.Errorf("position: offsets of group %s: %w", group, err)
	}
	pos := GroupPosition{Committed: -1}
	if b := committed.GetBlock(topic, partition); b != nil && b.Err == sarama.ErrNoError {
		pos.Committed = b.Offset
	}
	groups, err := admin.DescribeConsumerGroups([]string{group})
	if err == nil && (len(groups) != 1 || groups[0].Err != sarama.ErrNoError) {
		err = fmt.Errorf("%d groups described", len(groups))
		if len(groups) == 1 {
			err = groups[0].Err
		}
	}
	if err != nil {
		return GroupPosition{}, fmt.Errorf("position: members of group %s: %w", group, err)
	}
	pos.Members, pos.State = len(groups[0].Members), groups[0].State
	return pos, nil
}

// HighWatermarks returns the next offset of each partition of topic (one
// ListOffsets per partition).
func (r *LagReader) HighWatermarks(topic string) (map[int32]int64, error) {
	return r.perPartition(topic, func(client sarama.Client, _ sarama.ClusterAdmin, partitions []int32) (map[int32]int64, error) {
		hw := make(map[int32]int64, len(partitions))
		for _, p := range partitions {
			var err error
			if hw[p], err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
				return nil, fmt.Errorf("high watermark of %s/%d: %w", topic, p, err)
			}
		}
		return hw, nil
	})
}

// Committed returns group's committed offset on each partition of topic
// (-1: none committed there): one OffsetFetch.
func (r *LagReader) Committed(group, topic string) (map[int32]int64, error) {
	return r.perPartition(topic, func(_ sarama.Client, admin sarama.ClusterAdmin, partitions []int32) (map[int32]int64, error) {
		committed, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: partitions})
		if err == nil && committed.Err != sarama.ErrNoError {
			err = committed.Err
		}
		if err != nil {
			return nil, fmt.Errorf("offsets of group %s: %w", group, err)
		}
		out := make(map[int32]int64, len(partitions))
		for _, p := range partitions {
			out[p] = -1
			if b := committed.GetBlock(topic, p); b != nil && b.Err == sarama.ErrNoError {
				out[p] = b.Offset
			}
		}
		return out, nil
	})
}

// perPartition runs read over the kept connection with topic's partitions;
// a failure drops the connection (rebuilt on the next call).
func (r *LagReader) perPartition(topic string, read func(sarama.Client, sarama.ClusterAdmin, []int32) (map[int32]int64, error)) (map[int32]int64, error) {
	r.readMu.Lock()
	defer r.readMu.Unlock()
	client, admin, err := r.conn()
	if err != nil {
		return nil, err
	}
	partitions, err := client.Partitions(topic)
	if err == nil {
		var out map[int32]int64
		if out, err = read(client, admin, partitions); err == nil {
			return out, nil
		}
	}
	r.reset(admin)
	return nil, fmt.Errorf("kafka offsets of %s: %w", topic, err)
}
