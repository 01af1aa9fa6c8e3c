package requeue_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/internal/consumertest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/consumer/delayed"
	"github.com/onceflow/onceflow/pkg/consumer/requeue"
	"github.com/onceflow/onceflow/pkg/failure"
)

func TestRequeueConfig(t *testing.T) {
	t.Parallel()
	base := requeue.Config{}.Defaults()
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	tests := []struct {
		name   string
		change func(*requeue.Config)
		valid  bool
	}{
		{"defaults", func(*requeue.Config) {}, true},
		{"no requeue", func(c *requeue.Config) { c.MaxRequeues = -1 }, false},
		{"too many", func(c *requeue.Config) { c.MaxRequeues = 101 }, false},
		{"max below initial", func(c *requeue.Config) { c.MaxDelay = c.InitialDelay - 1 }, false},
		{"shrinking", func(c *requeue.Config) { c.Multiplier = 0.5 }, false},
	}
	for _, tt := range tests {
		c := base
		tt.change(&c)
		if err := c.Validate(); (err == nil) != tt.valid {
			t.Errorf("%s: Validate() = %v, want valid %v", tt.name, err, tt.valid)
		}
	}
	c := requeue.Config{InitialDelay: time.Second, MaxDelay: 4 * time.Second, Multiplier: 1.5}
	want := []time.Duration{time.Second, 1500 * time.Millisecond, 2250 * time.Millisecond, 3375 * time.Millisecond, 4 * time.Second, 4 * time.Second}
	for i, w := range want {
		if got := c.Delay(i + 1); got != w {
			t.Errorf("Delay(%d) = %v, want %v (a fractional multiplier must not be truncated)", i+1, got, w)
		}
	}
}

// requeueRig is a consumer rig with the requeue strategy and short delays.
func requeueRig(t *testing.T, maxRequeues int, handler func(r *consumertest.Rig) message.NoPublishHandlerFunc) *consumertest.Rig {
	t.Helper()
	rq, err := requeue.New(requeue.Config{MaxRequeues: maxRequeues, InitialDelay: time.Second, MaxDelay: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return consumertest.New(t, func(c *consumer.Config) {
		c.Strategy = rq
		c.Delayed.PollInterval = 50 * time.Millisecond
	}, handler)
}

// requeued is how many copies of message id wait on r's delayed path.
func requeued(t *testing.T, r *consumertest.Rig, id string) int {
	t.Helper()
	var n int
	if err := r.DB.QueryRow("SELECT COUNT(*) FROM "+delayed.Table+" WHERE uuid = ?", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRequeueIsNonBlockingAndHeals: a message fails (a bug) until the test
// heals it; with the requeue strategy it goes to the delayed path, so the message
// behind it on the same partition (same key) is processed meanwhile; once
// healed, the requeued message succeeds, once, and nothing is poisoned.
func TestRequeueIsNonBlockingAndHeals(t *testing.T) {
	t.Parallel()
	var healed atomic.Bool
	r := requeueRig(t, 100, func(r *consumertest.Rig) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			r.Attempt(msg)
			if err := r.Effect(msg); err != nil {
				return err
			}
			if msg.Metadata.Get("bug") != "" && !healed.Load() {
				return errors.New("bug: cannot handle this yet")
			}
			return nil
		}
	})
	bad, next := consumertest.MsgWithID(watermill.NewUUID()), consumertest.MsgWithID(watermill.NewUUID())
	bad.Metadata.Set("bug", "yes")
	r.Publish(t, bad, next) // same key: one partition, bad first
	r.WaitProcessed(t, next.UUID)
	if r.Effects(t, bad.UUID) != 0 {
		t.Fatal("the failing message has an effect before the bug healed")
	}
	testenv.WaitFor(t, "the failing message on the delayed path", 60*time.Second, func() bool { return requeued(t, r, bad.UUID) > 0 })
	healed.Store(true)
	r.WaitProcessed(t, bad.UUID)
	if got := r.Effects(t, bad.UUID); got != 1 {
		t.Fatalf("effects of the healed message = %d, want 1", got)
	}
	if got := r.AttemptsOf(bad.UUID); got < 4 {
		t.Fatalf("attempts = %d, want at least 3 in place and 1 requeued", got)
	}
	if n := testenv.TopicSize(t, r.Kafka, r.PoisonTopic); n != 0 {
		t.Fatalf("poison topic holds %d messages, want 0", n)
	}
}

// TestRequeueBoundThenPoison: a message that always fails is requeued
// MaxRequeues times, then poisoned with a reason that says so and the last
// error, naming its Kafka topic, its consumer and its consumer group.
func TestRequeueBoundThenPoison(t *testing.T) {
	t.Parallel()
	const maxRequeues = 2
	r := requeueRig(t, maxRequeues, func(r *consumertest.Rig) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			r.Attempt(msg)
			return errors.New("still broken")
		}
	})
	bad := consumertest.MsgWithID(watermill.NewUUID())
	r.Publish(t, bad)
	got := testenv.ReadTopic(t, r.Kafka, r.PoisonTopic, 1, 90*time.Second)
	if len(got) != 1 || got[0].UUID != bad.UUID {
		t.Fatalf("poison topic: %d messages, want the failing one", len(got))
	}
	p := got[0]
	reason := p.Metadata.Get(middleware.ReasonForPoisonedKey)
	if !strings.Contains(reason, "requeued 2 times") || !strings.Contains(reason, "still broken") {
		t.Errorf("reason_poisoned = %q, want the requeue bound and the last error", reason)
	}
	if v := p.Metadata.Get(middleware.PoisonedTopicKey); v != r.Topic {
		t.Errorf("topic_poisoned = %q, want the Kafka topic %q", v, r.Topic)
	}
	if v := p.Metadata.Get(middleware.PoisonedHandlerKey); v != "test" {
		t.Errorf("handler_poisoned = %q, want test", v)
	}
	if v := p.Metadata.Get(failure.MetadataPoisonedGroup); v == "" {
		t.Error("poisoned message does not name its consumer group")
	}
	if v := p.Metadata.Get(failure.MetadataReasonCode); v != failure.ReasonHandlerFailed {
		t.Errorf("reason_code = %q, want %q", v, failure.ReasonHandlerFailed)
	}
	// 3 attempts in place (MaxRetries 2) on each of the 1+maxRequeues deliveries.
	if n := r.AttemptsOf(bad.UUID); n != 3*(1+maxRequeues) {
		t.Errorf("attempts = %d, want %d", n, 3*(1+maxRequeues))
	}
	testenv.WaitFor(t, "the delayed path emptied", 30*time.Second, func() bool { return requeued(t, r, bad.UUID) == 0 })
}
