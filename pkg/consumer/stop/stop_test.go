package stop_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/consumertest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/consumer/stop"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/lifecycle"
)

// TestStopGivesUpTheWholeConsumer: with the stop strategy, a message whose retries
// are spent stops the consumer: Health names the consumer, the message, its key
// and the reason; the messages published afterwards on every partition wait at
// the gate, unprocessed; nothing is poisoned; a graceful stop (Drain) returns
// at once without abandoning anything; after a restart (with the bug fixed) the
// message that stopped it is delivered again (it was never acknowledged) and so
// is everything behind it.
func TestStopGivesUpTheWholeConsumer(t *testing.T) {
	testenv.NeedsServers(t, "the stop strategy on Kafka and MariaDB")
	t.Parallel()
	r, cfg, db := consumertest.NewConfig(t)
	st := stop.New()
	cfg.Strategy = st
	keys := consumertest.KeysOnPartitions(t, r.Topic, 2)
	bad := consumertest.Keyed(watermill.NewUUID(), keys[0])
	buggy := func(msg *message.Message) error {
		r.Attempt(msg)
		if msg.UUID == bad.UUID {
			return errors.New("handler bug: cannot process this message")
		}
		return r.Effect(msg)
	}
	first := consumertest.Start(t, cfg, db, lifecycle.Config{DrainTimeout: 30 * time.Second}, r.Topic, buggy)
	firstDone := false
	t.Cleanup(func() {
		if !firstDone {
			first.Cancel()
			<-first.Done
		}
	})

	r.Publish(t, bad)
	testenv.WaitFor(t, "the consumer to stop", 60*time.Second, func() bool { return first.Consumers.Health() != nil })
	var stopped *stop.StoppedError
	if err := first.Consumers.Health(); !errors.As(err, &stopped) {
		t.Fatalf("Health() = %v, want a *stop.StoppedError", err)
	}
	if stopped.Consumer != "test" || stopped.MessageID != bad.UUID || stopped.Key != keys[0] || stopped.ReasonCode != failure.ReasonHandlerFailed {
		t.Fatalf("stopped = %+v, want consumer test, message %s, key %s, reason %s", stopped, bad.UUID, keys[0], failure.ReasonHandlerFailed)
	}

	// Behind it: one message on its partition, two on the other.
	behind := []*message.Message{consumertest.Keyed(watermill.NewUUID(), keys[0]), consumertest.Keyed(watermill.NewUUID(), keys[1]), consumertest.Keyed(watermill.NewUUID(), keys[1])}
	r.Publish(t, behind...)
	// Both partitions hold their message in flight at the gate (the bad one
	// redelivered, the first of the other partition); if the gate let them
	// through, their effects appear instead.
	anyEffect := func() bool {
		for _, m := range behind {
			if r.Effects(t, m.UUID) > 0 {
				return true
			}
		}
		return false
	}
	testenv.WaitFor(t, "both partitions to hold a message at the gate", 60*time.Second,
		func() bool { return st.Held("test") == 2 || anyEffect() })
	if anyEffect() {
		t.Fatal("a message behind the stop was processed; want every partition held")
	}
	if n := testenv.TopicSize(t, r.Kafka, r.PoisonTopic); n != 0 {
		t.Fatalf("poison topic holds %d messages, want 0 (stop never poisons)", n)
	}

	// A graceful stop while stopped: the held messages leave at once, unacked.
	if abandoned := first.Consumers.Drain(time.Now().Add(20 * time.Second)); abandoned {
		t.Fatal("Drain abandoned handlers: messages held at the gate did not leave when the stop began")
	}
	first.Cancel()
	if err := <-first.Done; err != nil {
		t.Fatalf("lifecycle.Run: %v", err)
	}
	firstDone = true

	// Restart with the bug fixed: everything is delivered again and processed.
	cfg.Strategy = stop.New() // a new process
	second := consumertest.Start(t, cfg, db, lifecycle.Config{}, r.Topic, r.Effect)
	t.Cleanup(func() { second.Cancel(); <-second.Done })
	for _, m := range append([]*message.Message{bad}, behind...) {
		r.WaitEffect(t, m.UUID)
	}
	if err := second.Consumers.Health(); err != nil {
		t.Fatalf("Health() after the restart = %v, want nil", err)
	}
}
