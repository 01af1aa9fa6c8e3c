package fuzzseed

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/kafka"
)

// KafkaArgs returns a record a producer would send as the three arguments the
// Kafka fuzz targets take: value, key (nil without one) and headers, one
// "name: value" line per header, sorted by name so that a seed file is stable.
// It fails only if the key or value cannot be encoded.
func KafkaArgs(rec *sarama.ProducerMessage) (value, key []byte, headers string, err error) {
	if rec.Key != nil {
		if key, err = rec.Key.Encode(); err != nil {
			return nil, nil, "", err
		}
	}
	if rec.Value != nil {
		if value, err = rec.Value.Encode(); err != nil {
			return nil, nil, "", err
		}
	}
	hs := slices.Clone(rec.Headers)
	slices.SortFunc(hs, func(a, b sarama.RecordHeader) int { return bytes.Compare(a.Key, b.Key) })
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(string(h.Key) + ": " + string(h.Value) + "\n")
	}
	return value, key, b.String(), nil
}

// KafkaRecord is the record a consumer receives on topic with value, key and
// headers in KafkaArgs's form: one header per line that holds ": " (names may
// repeat, values may be empty or any bytes but a newline; other lines are
// ignored), at
// partition 1, offset 7.
func KafkaRecord(topic string, value, key []byte, headers string) *sarama.ConsumerMessage {
	km := &sarama.ConsumerMessage{Topic: topic, Partition: 1, Offset: 7, Key: key, Value: value}
	for _, line := range strings.Split(headers, "\n") {
		if name, val, ok := strings.Cut(line, ": "); ok {
			km.Headers = append(km.Headers, &sarama.RecordHeader{Key: []byte(name), Value: []byte(val)})
		}
	}
	return km
}

// KafkaSeed is the seed named name of msg as a producer here sends it to topic
// (kafka.Marshaler: key from the partition_key metadata, metadata as
// headers), in KafkaArgs's form. It fails t if msg cannot be marshaled.
func KafkaSeed(t testing.TB, name, topic string, msg *message.Message) Seed {
	t.Helper()
	rec, err := kafka.Marshaler(false).Marshal(topic, msg)
	if err != nil {
		t.Fatalf("seed %s: %v", name, err)
	}
	value, key, headers, err := KafkaArgs(rec)
	if err != nil {
		t.Fatalf("seed %s: %v", name, err)
	}
	return Seed{Name: name, Args: []any{value, key, headers}}
}

// Consumed is the message a consumer here gets for the record KafkaRecord
// builds (the subscribers' unmarshaler, kafka.Marshaler), and false if the
// unmarshaler refuses it (the subscriber then logs it and runs nothing of ours).
func Consumed(topic string, value, key []byte, headers string) (*message.Message, bool) {
	msg, err := kafka.Marshaler(false).Unmarshal(KafkaRecord(topic, value, key, headers))
	return msg, err == nil
}
