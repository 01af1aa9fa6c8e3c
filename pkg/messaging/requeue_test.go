package messaging_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/pkg/messaging/poison"
)

func TestRequeueConfig(t *testing.T) {
	t.Parallel()
	base := messaging.RequeueConfig{}.Defaults()
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	tests := []struct {
		name   string
		change func(*messaging.RequeueConfig)
		valid  bool
	}{
		{"defaults", func(*messaging.RequeueConfig) {}, true},
		{"no requeue", func(c *messaging.RequeueConfig) { c.MaxRequeues = -1 }, false},
		{"too many", func(c *messaging.RequeueConfig) { c.MaxRequeues = 101 }, false},
		{"max below initial", func(c *messaging.RequeueConfig) { c.MaxDelay = c.InitialDelay - 1 }, false},
		{"shrinking", func(c *messaging.RequeueConfig) { c.Multiplier = 0.5 }, false},
		{"no poll", func(c *messaging.RequeueConfig) { c.PollInterval = -1 }, false},
	}
	for _, tt := range tests {
		c := base
		tt.change(&c)
		if err := c.Validate(); (err == nil) != tt.valid {
			t.Errorf("%s: Validate() = %v, want valid %v", tt.name, err, tt.valid)
		}
	}
	c := messaging.RequeueConfig{InitialDelay: time.Second, MaxDelay: 4 * time.Second, Multiplier: 1.5}
	want := []time.Duration{time.Second, 1500 * time.Millisecond, 2250 * time.Millisecond, 3375 * time.Millisecond, 4 * time.Second, 4 * time.Second}
	for i, w := range want {
		if got := c.Delay(i + 1); got != w {
			t.Errorf("Delay(%d) = %v, want %v (a fractional multiplier must not be truncated)", i+1, got, w)
		}
	}
}

// requeueRig is a consumer rig in FailureRequeue with short delays.
func requeueRig(t *testing.T, maxRequeues int, handler func(r *consumerRig) message.NoPublishHandlerFunc) *consumerRig {
	t.Helper()
	return newConsumerRigWith(t, func(c *messaging.Config) {
		c.FailureMode = messaging.FailureRequeue
		c.Requeue = messaging.RequeueConfig{MaxRequeues: maxRequeues, InitialDelay: time.Second, MaxDelay: 2 * time.Second, PollInterval: 50 * time.Millisecond}
	}, handler, nil)
}

func (r *consumerRig) requeued(t *testing.T, id string) int {
	t.Helper()
	var n int
	if err := r.db.QueryRow("SELECT COUNT(*) FROM "+messaging.RequeueTable+" WHERE uuid = ?", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRequeueIsNonBlockingAndHeals: a message fails (a bug) until the test
// heals it; in FailureRequeue it goes to the delayed path, so the message
// behind it on the same partition (same key) is processed meanwhile; once
// healed, the requeued message succeeds, once, and nothing is poisoned.
func TestRequeueIsNonBlockingAndHeals(t *testing.T) {
	t.Parallel()
	var healed atomic.Bool
	r := requeueRig(t, 100, func(r *consumerRig) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			r.attempt(msg)
			if err := r.effect(msg); err != nil {
				return err
			}
			if msg.Metadata.Get("bug") != "" && !healed.Load() {
				return errors.New("bug: cannot handle this yet")
			}
			return nil
		}
	})
	bad, next := msgWithID(watermill.NewUUID()), msgWithID(watermill.NewUUID())
	bad.Metadata.Set("bug", "yes")
	r.publish(t, bad, next) // same key: one partition, bad first
	r.waitProcessed(t, next.UUID)
	if r.effects(t, bad.UUID) != 0 {
		t.Fatal("the failing message has an effect before the bug healed")
	}
	testenv.WaitFor(t, "the failing message on the delayed path", 60*time.Second, func() bool { return r.requeued(t, bad.UUID) > 0 })
	healed.Store(true)
	r.waitProcessed(t, bad.UUID)
	if got := r.effects(t, bad.UUID); got != 1 {
		t.Fatalf("effects of the healed message = %d, want 1", got)
	}
	if got := r.attemptsOf(bad.UUID); got < 4 {
		t.Fatalf("attempts = %d, want at least 3 in place and 1 requeued", got)
	}
	if n := testenv.TopicSize(t, r.kafka, r.poisonTopic); n != 0 {
		t.Fatalf("poison topic holds %d messages, want 0", n)
	}
}

// TestRequeueBoundThenPoison: a message that always fails is requeued
// MaxRequeues times, then poisoned with a reason that says so and the last
// error, naming its Kafka topic, its consumer and its consumer group.
func TestRequeueBoundThenPoison(t *testing.T) {
	t.Parallel()
	const maxRequeues = 2
	r := requeueRig(t, maxRequeues, func(r *consumerRig) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			r.attempt(msg)
			return errors.New("still broken")
		}
	})
	bad := msgWithID(watermill.NewUUID())
	r.publish(t, bad)
	got := testenv.ReadTopic(t, r.kafka, r.poisonTopic, 1, 90*time.Second)
	if len(got) != 1 || got[0].UUID != bad.UUID {
		t.Fatalf("poison topic: %d messages, want the failing one", len(got))
	}
	p := got[0]
	reason := p.Metadata.Get(middleware.ReasonForPoisonedKey)
	if !strings.Contains(reason, "requeued 2 times") || !strings.Contains(reason, "still broken") {
		t.Errorf("reason_poisoned = %q, want the requeue bound and the last error", reason)
	}
	if v := p.Metadata.Get(middleware.PoisonedTopicKey); v != r.topic {
		t.Errorf("topic_poisoned = %q, want the Kafka topic %q", v, r.topic)
	}
	if v := p.Metadata.Get(middleware.PoisonedHandlerKey); v != "test" {
		t.Errorf("handler_poisoned = %q, want test", v)
	}
	if v := p.Metadata.Get(messaging.MetadataPoisonedGroup); v == "" {
		t.Error("poisoned message does not name its consumer group")
	}
	if v := p.Metadata.Get(failure.MetadataReasonCode); v != failure.ReasonHandlerFailed {
		t.Errorf("reason_code = %q, want %q", v, failure.ReasonHandlerFailed)
	}
	// 3 attempts in place (MaxRetries 2) on each of the 1+maxRequeues deliveries.
	if n := r.attemptsOf(bad.UUID); n != 3*(1+maxRequeues) {
		t.Errorf("attempts = %d, want %d", n, 3*(1+maxRequeues))
	}
	testenv.WaitFor(t, "the delayed path emptied", 30*time.Second, func() bool { return r.requeued(t, bad.UUID) == 0 })
}

// TestReplayReachesOnlyItsGroup: two consumer groups (each with its own
// database, as two services) consume one topic; group A poisons a message that
// group B handles. A's poison replay, done twice, reaches A only: A's effect
// happens once (its inbox drops the second replay) and B, whose inbox is off
// so that it would count any second delivery, never gets it again. Then
// "purge --replayed" deletes the replayed message and keeps the one behind it
// that nobody replayed.
func TestReplayReachesOnlyItsGroup(t *testing.T) {
	t.Parallel()
	var healed atomic.Bool
	kc := testenv.Kafka(t)
	poisonTopics := testenv.Topics(t, kc, 1, "poison-a", "poison-b")
	a := newConsumerRigWith(t, func(c *messaging.Config) { c.PoisonTopic = poisonTopics[0] },
		func(r *consumerRig) message.NoPublishHandlerFunc {
			return func(msg *message.Message) error {
				if msg.Metadata.Get("bug") != "" && !healed.Load() {
					return failure.Permanent(errors.New("cannot handle this yet"))
				}
				return r.effect(msg)
			}
		}, nil)

	dB := testenv.NewDatabase(t, testenv.OrderDBAddr)
	b := &consumerRig{kafka: kc, topic: a.topic, db: dB.Admin, attempts: map[string]int{}}
	runB := startConsumers(t, messaging.Config{
		DB:            dB.DBConfig(),
		Kafka:         kc,
		ConsumerGroup: testenv.Group(t, kc, "group-b"),
		PoisonTopic:   poisonTopics[1],
		Requeue:       messaging.RequeueConfig{PollInterval: 50 * time.Millisecond},
	}, lifecycle.Config{}, a.topic, b.effect, messaging.DisableInboxForTest)
	t.Cleanup(func() {
		runB.cancel()
		if err := <-runB.done; err != nil {
			t.Errorf("lifecycle.Run (group B): %v", err)
		}
	})

	bad, marker := msgWithID(watermill.NewUUID()), msgWithID(watermill.NewUUID())
	bad.Metadata.Set("bug", "yes")
	a.publish(t, bad, marker)
	waitEffect(t, a, marker.UUID)
	waitEffect(t, b, marker.UUID)

	tool := poison.New(kc, poisonTopics[0], a.db)
	defer tool.Close()
	ctx := context.Background()
	page, err := tool.List(ctx, poison.Query{})
	list := page.Entries
	if err != nil || len(list) != 1 || list[0].ID != bad.UUID || list[0].Handler != "test" || list[0].Group == "" {
		t.Fatalf("poison list = %+v, %v; want the bad message, from handler test, with its group", list, err)
	}
	healed.Store(true)
	for range 2 {
		if _, err := tool.Replay(ctx, list[0].Offset); err != nil {
			t.Fatal(err)
		}
	}
	waitEffect(t, a, bad.UUID)
	testenv.WaitFor(t, "both replays consumed", 60*time.Second, func() bool { return a.requeued(t, bad.UUID) == 0 })
	if got := a.effects(t, bad.UUID); got != 1 {
		t.Fatalf("group A: effects of the message replayed twice = %d, want 1", got)
	}
	// A later message on the same partition: had a replay gone to the topic,
	// B would have handled it again before this one.
	after := msgWithID(watermill.NewUUID())
	a.publish(t, after)
	waitEffect(t, b, after.UUID)
	if got := b.effects(t, bad.UUID); got != 1 {
		t.Fatalf("group B handled the message %d times, want 1: the replay reached another group", got)
	}

	// Cleanup: a second poisoned message, not replayed, stays.
	healed.Store(false)
	kept := msgWithID(watermill.NewUUID())
	kept.Metadata.Set("bug", "yes")
	a.publish(t, kept)
	testenv.WaitFor(t, "the second message poisoned", 60*time.Second, func() bool { return testenv.TopicSize(t, kc, poisonTopics[0]) == 2 })
	n, err := tool.PurgeReplayed(ctx)
	if err != nil || n != 1 {
		t.Fatalf("PurgeReplayed = %d, %v; want 1", n, err)
	}
	if page, err := tool.List(ctx, poison.Query{}); err != nil || len(page.Entries) != 1 || page.Entries[0].ID != kept.UUID {
		t.Fatalf("after PurgeReplayed: %+v, %v; want only the message not replayed", page.Entries, err)
	}
	if n, err := tool.PurgeReplayed(ctx); err != nil || n != 0 {
		t.Fatalf("second PurgeReplayed = %d, %v; want 0", n, err)
	}
}
