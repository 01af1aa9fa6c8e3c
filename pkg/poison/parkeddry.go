package poison

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/IBM/sarama"

	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox/parking"
)

// ParkedDryRun is what a replay of a parked outbox row would do, as far as
// can be known without sending it.
type ParkedDryRun struct {
	// Rows are the rows the replay would send, in order: the head, then the
	// key's rows parked behind it (each goes once the one before reached
	// Kafka).
	Rows []parking.Row `json:"rows"`
	// TopicExists says the head's topic exists in Kafka now.
	TopicExists bool `json:"topic_exists"`
	// MaxMessageBytes is the largest record Kafka and the producer take for
	// that topic now: the smaller of the topic's max.message.bytes and the
	// producer's MaxMessageBytes.
	MaxMessageBytes int `json:"max_message_bytes"`
	// HeadBytes is the head's size as Kafka counts it, near enough: payload,
	// metadata and key (the record batch adds about 70 bytes).
	HeadBytes int `json:"head_bytes"`
	// WouldSucceed says Kafka would take the head: its topic exists and it
	// fits. ReasonCode is the refusal to expect otherwise (kafka.Refused*). A
	// record the broker refuses for its content (invalid_record) cannot be
	// told without sending it.
	WouldSucceed bool   `json:"would_succeed"`
	ReasonCode   string `json:"reason_code,omitempty"`
}

// DryRunParked tells what replaying the parked row id (the head of its key)
// would do: which rows would go to Kafka, in order, and whether Kafka would
// take the head now (its topic exists; it fits the topic's and the
// producer's size limits). It reads the database and asks Kafka's metadata
// and topic configuration; it sends and changes nothing. Errors:
// parking.ErrNotFound, parking.ErrNotHead, parking.ErrAlreadyReleased, and
// Kafka's.
func (t *Tool) DryRunParked(ctx context.Context, id int64) (ParkedDryRun, error) {
	head, err := t.ParkedRow(ctx, id)
	if err != nil {
		return ParkedDryRun{}, err
	}
	switch {
	case head.Released:
		return ParkedDryRun{}, parking.ErrAlreadyReleased
	case !head.Head:
		return ParkedDryRun{}, parking.ErrNotHead
	}
	ofKey, err := t.parked().OfKey(ctx, head.Key)
	if err != nil {
		return ParkedDryRun{}, err
	}
	d := ParkedDryRun{Rows: []parking.Row{head}, HeadBytes: head.Size + len(head.Key),
		MaxMessageBytes: t.kafka.ProducerConfig().Producer.MaxMessageBytes}
	for _, r := range ofKey {
		if r.ID > head.ID {
			d.Rows = append(d.Rows, r)
		}
	}
	topicMax, exists, err := t.topicMaxMessageBytes(head.Topic)
	if err != nil {
		return ParkedDryRun{}, err
	}
	d.TopicExists = exists
	if exists && topicMax > 0 && topicMax < d.MaxMessageBytes {
		d.MaxMessageBytes = topicMax
	}
	switch {
	case !exists:
		d.ReasonCode = kafka.RefusedUnknownTopic
	case d.HeadBytes > d.MaxMessageBytes:
		d.ReasonCode = kafka.RefusedTooLarge
	default:
		d.WouldSucceed = true
	}
	return d, nil
}

// topicMaxMessageBytes returns topic's max.message.bytes (0 if Kafka does not
// say) and whether the topic exists.
func (t *Tool) topicMaxMessageBytes(topic string) (int, bool, error) {
	admin, err := sarama.NewClusterAdmin(t.kafka.Brokers, t.kafka.ConsumerConfig())
	if err != nil {
		return 0, false, fmt.Errorf("kafka: %w", err)
	}
	defer admin.Close()
	meta, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return 0, false, fmt.Errorf("kafka: describe topic %s: %w", topic, err)
	}
	if len(meta) == 0 || errors.Is(meta[0].Err, sarama.ErrUnknownTopicOrPartition) {
		return 0, false, nil
	}
	if meta[0].Err != sarama.ErrNoError {
		return 0, false, fmt.Errorf("kafka: describe topic %s: %w", topic, meta[0].Err)
	}
	results, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"max.message.bytes"}}},
		sarama.DescribeConfigsOptions{})
	if err != nil {
		return 0, true, fmt.Errorf("kafka: config of topic %s: %w", topic, err)
	}
	if len(results) != 1 {
		return 0, true, fmt.Errorf("kafka: config of topic %s: %d answers, want 1", topic, len(results))
	}
	if r := results[0]; r.ErrorCode != sarama.ErrNoError {
		return 0, true, fmt.Errorf("kafka: config of topic %s: %w: %s", topic, r.ErrorCode, r.ErrorMsg)
	}
	for _, e := range results[0].Configs {
		if e.Name == "max.message.bytes" {
			n, err := strconv.Atoi(e.Value)
			if err != nil {
				return 0, true, fmt.Errorf("kafka: max.message.bytes of topic %s is %q", topic, e.Value)
			}
			return n, true, nil
		}
	}
	return 0, true, nil
}
