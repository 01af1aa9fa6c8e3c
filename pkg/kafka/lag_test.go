package kafka_test

import (
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// TestLagReaderCountsWhatTheGroupHasNotCommitted: a group that has committed
// nothing on a topic holding three messages lags by three (the committed case
// is covered live by the services' metrics tests).
func TestLagReaderCountsWhatTheGroupHasNotCommitted(t *testing.T) {
	t.Parallel()
	kc := testenv.Kafka(t)
	topic := testenv.Topics(t, kc, 2, "lag")[0]
	pub := kc.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	for i := range 3 {
		m := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
		m.Metadata.Set(kafka.MetadataKey, fmt.Sprint("key-", i))
		if err := pub.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
	}
	lag := kafka.NewLagReader(kc)
	defer lag.Close()
	sub := kafka.Subscription{Group: testenv.UniqueName(t, "lag"), Topic: topic}
	lags, err := lag.Read([]kafka.Subscription{sub, sub}) // a repeated subscription is read once
	if err != nil {
		t.Fatal(err)
	}
	if len(lags) != 2 || lags[0].Messages+lags[1].Messages != 3 {
		t.Fatalf("lag %+v; want 2 partitions lagging by 3 messages in all", lags)
	}
}
