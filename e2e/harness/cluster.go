package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/onceflow/onceflow/pkg/kafka"
)

// OffsetsTopic is Kafka's internal topic of consumer-group offsets: with three
// nodes it is replicated like the event topics, and a rolling restart waits for
// its replicas too.
const OffsetsTopic = "__consumer_offsets"

// admin opens a cluster admin on every Kafka node of i. Reads time out after
// 5 s, so that a paused (SIGSTOPped) node costs one timeout, not sarama's 30 s.
func (i *Infra) admin() (sarama.ClusterAdmin, error) {
	cfg := kafka.Config{Brokers: i.KafkaBrokers(), ClientID: "harness-cluster"}.Defaults().ConsumerConfig()
	cfg.Net.ReadTimeout = 5 * time.Second
	cfg.Admin.Timeout = 5 * time.Second
	return sarama.NewClusterAdmin(i.KafkaBrokers(), cfg)
}

// LeaderOfMost returns infra.sh's name of the Kafka node that leads the most
// partitions of topic (the lowest node id on a tie), and how many it leads. It
// fails if the cluster does not answer or the topic has no partition with a leader.
func (i *Infra) LeaderOfMost(topic string) (string, int, error) {
	admin, err := i.admin()
	if err != nil {
		return "", 0, err
	}
	defer admin.Close()
	meta, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return "", 0, err
	}
	if len(meta) != 1 || meta[0].Err != sarama.ErrNoError {
		return "", 0, fmt.Errorf("describing %s: %v", topic, meta)
	}
	count := map[int32]int{}
	for _, p := range meta[0].Partitions {
		if p.Leader >= 0 {
			count[p.Leader]++
		}
	}
	best := int32(-1)
	for id, n := range count {
		if best < 0 || n > count[best] || (n == count[best] && id < best) {
			best = id
		}
	}
	if best < 0 {
		return "", 0, fmt.Errorf("no partition of %s has a leader", topic)
	}
	return i.KafkaNode(best), count[best], nil
}

// WaitInSync waits until every Kafka node is registered with the cluster and
// every partition of topics has a leader and all its replicas in sync (the ISR
// is the replica set), or ctx ends (the error then says what was missing).
// OffsetsTopic counts only once it exists.
func (i *Infra) WaitInSync(ctx context.Context, topics ...string) error {
	var last error
	for {
		if last = i.inSync(topics); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not in sync: %w", last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (i *Infra) inSync(topics []string) error {
	admin, err := i.admin()
	if err != nil {
		return err
	}
	defer admin.Close()
	brokers, _, err := admin.DescribeCluster()
	if err != nil {
		return err
	}
	if len(brokers) < max(i.KafkaNodes, 1) {
		return fmt.Errorf("%d of %d nodes registered", len(brokers), i.KafkaNodes)
	}
	meta, err := admin.DescribeTopics(topics)
	if err != nil {
		return err
	}
	for _, t := range meta {
		if t.Name == OffsetsTopic && t.Err == sarama.ErrUnknownTopicOrPartition {
			continue // created when the first consumer group looks for its coordinator
		}
		if t.Err != sarama.ErrNoError {
			return fmt.Errorf("%s: %w", t.Name, t.Err)
		}
		for _, p := range t.Partitions {
			if p.Leader < 0 || len(p.Isr) < len(p.Replicas) {
				return fmt.Errorf("%s/%d: leader %d, in sync %v of %v", t.Name, p.ID, p.Leader, p.Isr, p.Replicas)
			}
		}
	}
	return nil
}
