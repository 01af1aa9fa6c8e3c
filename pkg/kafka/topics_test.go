package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// TestPoisonTopicsNeverExpire (integration, real Kafka): a poison topic is
// created with retention.ms=-1, and one that already existed with the broker's
// default retention gets it from ApplyTopicConfigs, so unreplayed poison never
// silently expires.
func TestPoisonTopicsNeverExpire(t *testing.T) {
	t.Parallel()
	kc := testenv.Kafka(t)
	created := testenv.TopicName(t, kc, "poison-new")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kc.EnsureTopics(ctx, []kafka.TopicSpec{kafka.PoisonTopicSpec(created)}); err != nil {
		t.Fatal(err)
	}
	existing := testenv.Topics(t, kc, 1, "poison-old")[0] // created without settings
	if got := retention(t, kc.Brokers, existing); got == kafka.PoisonRetentionMs {
		t.Fatalf("a topic created without settings already has retention.ms=%s: the test proves nothing", got)
	}
	if err := kc.ApplyTopicConfigs([]kafka.TopicSpec{kafka.PoisonTopicSpec(existing)}); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{created, existing} {
		// The broker answers from its copy of the metadata, which follows the
		// controller's a moment after the change is committed.
		got := retention(t, kc.Brokers, topic)
		for deadline := time.Now().Add(10 * time.Second); got != kafka.PoisonRetentionMs && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			got = retention(t, kc.Brokers, topic)
		}
		if got != kafka.PoisonRetentionMs {
			t.Errorf("topic %s has retention.ms=%s, want %s", topic, got, kafka.PoisonRetentionMs)
		}
	}
}

func retention(t *testing.T, brokers []string, topic string) string {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	results, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"}}},
		sarama.DescribeConfigsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.ErrorCode != sarama.ErrNoError {
			t.Fatalf("topic %s: describe configs: %v %s", topic, r.ErrorCode, r.ErrorMsg)
		}
		for _, e := range r.Configs {
			if e.Name == "retention.ms" {
				return e.Value
			}
		}
	}
	t.Fatalf("topic %s: no retention.ms in %v", topic, results)
	return ""
}
