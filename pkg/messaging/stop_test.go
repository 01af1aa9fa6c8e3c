package messaging_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/messaging"
)

// keysOnPartitions returns one Kafka key per partition of a topic with n
// partitions, as the producers' hash partitioner places them.
func keysOnPartitions(t *testing.T, topic string, n int32) []string {
	t.Helper()
	keys := make([]string, n)
	found := int32(0)
	p := sarama.NewHashPartitioner(topic)
	for i := 0; found < n; i++ {
		k := fmt.Sprintf("key-%d", i)
		part, err := p.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(k)}, n)
		if err != nil {
			t.Fatal(err)
		}
		if keys[part] == "" {
			keys[part] = k
			found++
		}
	}
	return keys
}

func keyedMsg(id, key string) *message.Message {
	m := msgWithID(id)
	m.Metadata.Set(events.MetadataKey, key)
	return m
}

// TestStopGivesUpTheWholeConsumer: with FailureStop, a message whose retries
// are spent stops the consumer: Health names the consumer, the message, its key
// and the reason; the messages published afterwards on every partition wait at
// the gate, unprocessed; nothing is poisoned; a graceful stop (Drain) returns
// at once without abandoning anything; after a restart (with the bug fixed) the
// message that stopped it is delivered again (it was never acknowledged) and so
// is everything behind it.
func TestStopGivesUpTheWholeConsumer(t *testing.T) {
	testenv.NeedsServers(t, "FailureStop on Kafka and MariaDB")
	t.Parallel()
	r, cfg := newRigConfig(t)
	cfg.FailureMode = messaging.FailureStop
	keys := keysOnPartitions(t, r.topic, 2)
	bad := keyedMsg(watermill.NewUUID(), keys[0])
	buggy := func(msg *message.Message) error {
		r.attempt(msg)
		if msg.UUID == bad.UUID {
			return errors.New("handler bug: cannot process this message")
		}
		return r.effect(msg)
	}
	first := startConsumers(t, cfg, lifecycle.Config{DrainTimeout: 30 * time.Second}, r.topic, buggy, nil)
	firstDone := false
	t.Cleanup(func() {
		if !firstDone {
			first.cancel()
			<-first.done
		}
	})

	r.publish(t, bad)
	testenv.WaitFor(t, "the consumer to stop", 60*time.Second, func() bool { return first.consumers.Health() != nil })
	var stopped *messaging.ConsumerStoppedError
	if err := first.consumers.Health(); !errors.As(err, &stopped) {
		t.Fatalf("Health() = %v, want a *ConsumerStoppedError", err)
	}
	if stopped.Consumer != "test" || stopped.MessageID != bad.UUID || stopped.Key != keys[0] || stopped.ReasonCode != failure.ReasonHandlerFailed {
		t.Fatalf("stopped = %+v, want consumer test, message %s, key %s, reason %s", stopped, bad.UUID, keys[0], failure.ReasonHandlerFailed)
	}

	// Behind it: one message on its partition, two on the other.
	behind := []*message.Message{keyedMsg(watermill.NewUUID(), keys[0]), keyedMsg(watermill.NewUUID(), keys[1]), keyedMsg(watermill.NewUUID(), keys[1])}
	r.publish(t, behind...)
	// Both partitions hold their message in flight at the gate (the bad one
	// redelivered, the first of the other partition); if the gate let them
	// through, their effects appear instead.
	anyEffect := func() bool {
		for _, m := range behind {
			if r.effects(t, m.UUID) > 0 {
				return true
			}
		}
		return false
	}
	testenv.WaitFor(t, "both partitions to hold a message at the gate", 60*time.Second,
		func() bool { return messaging.HeldForTest(first.consumers, "test") == 2 || anyEffect() })
	if anyEffect() {
		t.Fatal("a message behind the stop was processed; want every partition held")
	}
	if n := testenv.TopicSize(t, r.kafka, r.poisonTopic); n != 0 {
		t.Fatalf("poison topic holds %d messages, want 0 (stop never poisons)", n)
	}

	// A graceful stop while stopped: the held messages leave at once, unacked.
	if abandoned := first.consumers.Drain(time.Now().Add(20 * time.Second)); abandoned {
		t.Fatal("Drain abandoned handlers: messages held at the gate did not leave when the stop began")
	}
	first.cancel()
	if err := <-first.done; err != nil {
		t.Fatalf("lifecycle.Run: %v", err)
	}
	firstDone = true

	// Restart with the bug fixed: everything is delivered again and processed.
	second := startConsumers(t, cfg, lifecycle.Config{}, r.topic, r.effect, nil)
	t.Cleanup(func() { second.cancel(); <-second.done })
	for _, m := range append([]*message.Message{bad}, behind...) {
		waitEffect(t, r, m.UUID)
	}
	if err := second.consumers.Health(); err != nil {
		t.Fatalf("Health() after the restart = %v, want nil", err)
	}
}
