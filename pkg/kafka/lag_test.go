package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

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

// TestPositionNamesTheCommittedOffsetAndTheMembers: before a group reads, it
// has committed nothing and has no member; while one subscriber of it runs
// and acknowledges the partition's only message, it has one member and its
// committed offset passes the message; after the subscriber closes, none.
func TestPositionNamesTheCommittedOffsetAndTheMembers(t *testing.T) {
	t.Parallel()
	kc := testenv.Kafka(t)
	topic := testenv.Topics(t, kc, 1, "position")[0]
	pub := kc.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	m := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	m.Metadata.Set(kafka.MetadataKey, "key")
	if err := pub.Publish(topic, m); err != nil {
		t.Fatal(err)
	}
	lag := kafka.NewLagReader(kc)
	defer lag.Close()
	group := testenv.UniqueName(t, "position")
	position := func() kafka.GroupPosition {
		t.Helper()
		pos, err := lag.Position(group, topic, 0)
		if err != nil {
			t.Fatal(err)
		}
		return pos
	}
	if pos := position(); pos.Committed != -1 || pos.Members != 0 {
		t.Fatalf("before the group reads: %+v, want nothing committed and no member", pos)
	}

	sub, err := kc.NewSubscriber(group, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	(<-msgs).Ack()
	testenv.WaitFor(t, "the group to commit past the message with one member", 30*time.Second, func() bool {
		pos := position()
		return pos.Committed == 1 && pos.Members == 1
	})
	// The same through the whole topic's offsets.
	hw, err := lag.HighWatermarks(topic)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := lag.Committed(group, topic)
	if err != nil {
		t.Fatal(err)
	}
	if hw[0] != 1 || committed[0] != 1 {
		t.Fatalf("high watermark %v, committed %v; want 1 and 1", hw, committed)
	}
	cancel()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the group to lose its member", 30*time.Second, func() bool { return position().Members == 0 })
}
