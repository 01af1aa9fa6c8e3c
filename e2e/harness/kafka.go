package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/onceflow/onceflow/pkg/kafka"
)

// ConsumerLag is the package-level ConsumerLag on the stack's Kafka.
func (s *Stack) ConsumerLag(group, topic string) (int64, error) {
	return ConsumerLag(s.Kafka, group, topic)
}

// ConsumerLag returns, for the consumer group on topic, the sum over partitions
// of (newest offset - committed offset). A partition the group never committed
// counts from the oldest offset.
func ConsumerLag(kc kafka.Config, group, topic string) (int64, error) {
	client, err := sarama.NewClient(kc.Brokers, kc.ConsumerConfig())
	if err != nil {
		return 0, err
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return 0, err
	}
	partitions, err := client.Partitions(topic)
	if err != nil {
		return 0, err
	}
	committed, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: partitions})
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, p := range partitions {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		at := int64(-1)
		if b := committed.GetBlock(topic, p); b != nil {
			at = b.Offset
		}
		if at < 0 {
			if at, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
				return 0, err
			}
		}
		lag += newest - at
	}
	return lag, nil
}

// Groups are the consumer groups of the stack's services.
func (s *Stack) Groups() (order, payment string) {
	return s.Config.Name + "-order", s.Config.Name + "-payment"
}

// WaitDrained waits until no work is left anywhere (see drained: both outboxes
// empty and both consumer groups' lag 0, checked in causal order) or ctx ends.
// Call it once nothing new enters the system.
func (s *Stack) WaitDrained(ctx context.Context) error {
	for !s.drained() {
		select {
		case <-ctx.Done():
			orderGroup, paymentGroup := s.Groups()
			lagP, errP := s.ConsumerLag(paymentGroup, s.Topics.Orders)
			lagO, errO := s.ConsumerLag(orderGroup, s.Topics.Payments)
			return fmt.Errorf("not drained: payment lag %d (%v), order lag %d (%v), or an outbox not empty", lagP, errP, lagO, errO) //nolint:errorlint // errP and errO are nil when the lag was read
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
