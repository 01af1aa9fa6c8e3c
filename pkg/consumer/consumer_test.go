package consumer_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
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
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/poison"
)

// TestInboxAppliesEachMessageOnce delivers one message id three times; the effect
// must happen once. With the inbox disabled (negative control) it happens three
// times.
func TestInboxAppliesEachMessageOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		disabled    bool
		wantEffects int
	}{
		{"inbox on", false, 1},
		{"inbox off (negative control)", true, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []consumer.Option
			if tt.disabled {
				opts = append(opts, consumer.WithoutInboxForTest())
			}
			r := consumertest.New(t, nil, func(r *consumertest.Rig) message.NoPublishHandlerFunc { return r.Effect }, opts...)
			id := watermill.NewUUID()
			marker := watermill.NewUUID()
			r.Publish(t, consumertest.MsgWithID(id), consumertest.MsgWithID(id), consumertest.MsgWithID(id), consumertest.MsgWithID(marker))
			r.WaitEffect(t, marker) // same key, same partition: the three came before
			if got := r.Effects(t, id); got != tt.wantEffects {
				t.Fatalf("effects of a message delivered 3 times = %d, want %d", got, tt.wantEffects)
			}
		})
	}
}

// TestTransientFailuresAreRetriedNotPoisoned: a handler that writes its effect and
// then fails twice succeeds on the third attempt; the effect is there once (the
// failed attempts rolled back) and nothing is poisoned.
func TestTransientFailuresAreRetriedNotPoisoned(t *testing.T) {
	t.Parallel()
	r := consumertest.New(t, nil, func(r *consumertest.Rig) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			if err := r.Effect(msg); err != nil {
				return err
			}
			if r.Attempt(msg) <= 2 {
				return errors.New("transient failure")
			}
			return nil
		}
	})
	id := watermill.NewUUID()
	r.Publish(t, consumertest.MsgWithID(id))
	r.WaitProcessed(t, id)
	if got := r.Effects(t, id); got != 1 {
		t.Fatalf("effects = %d, want 1", got)
	}
	if got := r.AttemptsOf(id); got != 3 {
		t.Fatalf("attempts = %d, want 3", got)
	}
	// The message succeeded, so had it been poisoned that would have happened
	// already (instead): the poison topic's offsets say whether it was.
	if n := testenv.TopicSize(t, r.Kafka, r.PoisonTopic); n != 0 {
		t.Fatalf("poison topic holds %d messages, want 0", n)
	}
}

// TestPoisonQueue: each bad message lands in the poison topic with its reason
// and the consumer moves on to the next message.
func TestPoisonQueue(t *testing.T) {
	t.Parallel()
	validEvent := func(id string) *message.Message {
		m, err := events.Encode(events.Event{ID: id, OrderID: "o-1", OrderVersion: 1, OccurredAt: time.Now(),
			Payload: events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 1, Currency: "EUR"}}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name         string
		msg          *message.Message
		wantReason   string
		wantAttempts int
		wantCode     string
	}{
		{"malformed bytes", message.NewMessage(watermill.NewUUID(), []byte{0xff, 0x00, 'x'}), "malformed event", 1, "invalid_event"},
		{"unknown event type", message.NewMessage(watermill.NewUUID(),
			[]byte(`{"type":"order.shipped","schema_version":1,"order_id":"o-1","order_version":1,"occurred_at":"2026-01-01T00:00:00Z","data":{}}`)),
			"unknown event type", 1, "invalid_event"},
		{"fails validation", message.NewMessage(watermill.NewUUID(),
			[]byte(`{"type":"order.placed","schema_version":1,"order_id":"o-1","order_version":1,"occurred_at":"2026-01-01T00:00:00Z","data":{"customer_id":"c-1","amount_cents":-3,"currency":"EUR"}}`)),
			"invalid event", 1, "invalid_event"},
		{"no message id", message.NewMessage("", []byte(`{}`)), "message has no id", 0, "invalid_event"},
		{"keeps failing", validEvent(watermill.NewUUID()), "handler keeps failing", 3, "handler_failed"},
	}
	r := consumertest.New(t, nil, func(r *consumertest.Rig) message.NoPublishHandlerFunc {
		decode := func(msg *message.Message) error {
			e, err := events.Decode(msg)
			if err != nil {
				return err
			}
			if e.OrderID == "o-1" {
				return errors.New("handler keeps failing")
			}
			return nil
		}
		return func(msg *message.Message) error {
			r.Attempt(msg)
			if err := decode(msg); err != nil {
				return err
			}
			return r.Effect(msg)
		}
	})
	for _, tt := range tests {
		r.Publish(t, tt.msg)
	}
	// The next valid message still goes through.
	next := validEvent(watermill.NewUUID())
	okEvent := func() *message.Message {
		m := next.Copy()
		m.Payload = []byte(`{"type":"order.placed","schema_version":1,"order_id":"o-2","order_version":1,"occurred_at":"2026-01-01T00:00:00Z","data":{"customer_id":"c-1","amount_cents":1,"currency":"EUR"}}`)
		return m
	}()
	r.Publish(t, okEvent)
	r.WaitEffect(t, okEvent.UUID)

	poisoned := testenv.ReadTopic(t, r.Kafka, r.PoisonTopic, len(tests), 30*time.Second)
	if len(poisoned) != len(tests) {
		t.Fatalf("poison topic holds %d messages, want %d", len(poisoned), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := poisoned[i]
			if p.UUID != tt.msg.UUID {
				t.Fatalf("poisoned message %d is %q, want %q (in order)", i, p.UUID, tt.msg.UUID)
			}
			reason := p.Metadata.Get(middleware.ReasonForPoisonedKey)
			if !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason_poisoned = %q, want it to mention %q", reason, tt.wantReason)
			}
			if got := p.Metadata.Get(failure.MetadataReasonCode); got != tt.wantCode {
				t.Errorf("reason_code = %q, want %q", got, tt.wantCode)
			}
			if got := p.Metadata.Get(middleware.PoisonedTopicKey); got != r.Topic {
				t.Errorf("topic_poisoned = %q, want %q", got, r.Topic)
			}
			if got := p.Metadata.Get(middleware.PoisonedHandlerKey); got != "test" {
				t.Errorf("handler_poisoned = %q, want test", got)
			}
			if got := r.AttemptsOf(tt.msg.UUID); got != tt.wantAttempts {
				t.Errorf("handler attempts = %d, want %d (permanent errors are not retried)", got, tt.wantAttempts)
			}
		})
	}
}

// TestOutageIsNotPoisoned: a handler that fails with "database unreachable" for
// longer than the retries last is not poisoned; the message is delivered again
// until it succeeds.
func TestOutageIsNotPoisoned(t *testing.T) {
	t.Parallel()
	r := consumertest.New(t, nil, func(r *consumertest.Rig) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			if n := r.Attempt(msg); n <= 7 { // retries allow 3 attempts per delivery
				return fmt.Errorf("attempt %d: %w", n, driver.ErrBadConn)
			}
			return r.Effect(msg)
		}
	})
	id := watermill.NewUUID()
	r.Publish(t, consumertest.MsgWithID(id))
	r.WaitEffect(t, id) // a poisoned message would have been acknowledged without its effect
	if n := testenv.TopicSize(t, r.Kafka, r.PoisonTopic); n != 0 {
		t.Fatalf("poison topic holds %d messages, want 0", n)
	}
}

// TestHangingHandlerIsPoisonedAsTimeout: a handler that hangs on every attempt
// is a bug, not an outage: each attempt ends at HandlerTimeout, is retried, and
// the message lands in the poison topic with reason code handler_timeout; the
// next message goes through.
func TestHangingHandlerIsPoisonedAsTimeout(t *testing.T) {
	t.Parallel()
	hanging, next := watermill.NewUUID(), watermill.NewUUID()
	r := consumertest.New(t, func(c *consumer.Config) { c.HandlerTimeout = 200 * time.Millisecond },
		func(r *consumertest.Rig) message.NoPublishHandlerFunc {
			return func(msg *message.Message) error {
				r.Attempt(msg)
				if msg.UUID == hanging {
					<-msg.Context().Done()
					return msg.Context().Err()
				}
				return r.Effect(msg)
			}
		})
	r.Publish(t, consumertest.MsgWithID(hanging), consumertest.MsgWithID(next))
	r.WaitEffect(t, next)
	poisoned := testenv.ReadTopic(t, r.Kafka, r.PoisonTopic, 1, 30*time.Second)
	if len(poisoned) != 1 || poisoned[0].UUID != hanging {
		t.Fatalf("poison topic holds %d messages, want the hanging one", len(poisoned))
	}
	if got := poisoned[0].Metadata.Get(failure.MetadataReasonCode); got != consumer.ReasonHandlerTimeout {
		t.Errorf("reason_code = %q, want %q", got, consumer.ReasonHandlerTimeout)
	}
	if reason := poisoned[0].Metadata.Get(middleware.ReasonForPoisonedKey); !strings.Contains(reason, "timeout") {
		t.Errorf("reason_poisoned = %q, want it to mention the timeout", reason)
	}
	if n := r.AttemptsOf(hanging); n != 3 {
		t.Errorf("attempts = %d, want 3 (retried like any failure)", n)
	}
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
	a := consumertest.New(t, func(c *consumer.Config) { c.PoisonTopic = poisonTopics[0] },
		func(r *consumertest.Rig) message.NoPublishHandlerFunc {
			return func(msg *message.Message) error {
				if msg.Metadata.Get("bug") != "" && !healed.Load() {
					return failure.Permanent(errors.New("cannot handle this yet"))
				}
				return r.Effect(msg)
			}
		})

	dB := testenv.NewDatabase(t, testenv.OrderDBAddr)
	b := consumertest.NewRig(kc, a.Topic, poisonTopics[1], dB.Admin)
	runB := consumertest.Start(t, consumer.Config{
		Kafka:         kc,
		ConsumerGroup: testenv.Group(t, kc, "group-b"),
		PoisonTopic:   poisonTopics[1],
		Delayed:       delayed.Config{PollInterval: 50 * time.Millisecond},
	}, dB.DBConfig(), lifecycle.Config{}, a.Topic, b.Effect, consumer.WithoutInboxForTest())
	t.Cleanup(func() {
		runB.Cancel()
		if err := <-runB.Done; err != nil {
			t.Errorf("lifecycle.Run (group B): %v", err)
		}
	})

	bad, marker := consumertest.MsgWithID(watermill.NewUUID()), consumertest.MsgWithID(watermill.NewUUID())
	bad.Metadata.Set("bug", "yes")
	a.Publish(t, bad, marker)
	a.WaitEffect(t, marker.UUID)
	b.WaitEffect(t, marker.UUID)

	tool := poison.New(kc, poisonTopics[0], a.DB)
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
	a.WaitEffect(t, bad.UUID)
	testenv.WaitFor(t, "both replays consumed", 60*time.Second, func() bool {
		var n int
		if err := a.DB.QueryRow("SELECT COUNT(*) FROM "+delayed.Table+" WHERE uuid = ?", bad.UUID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	if got := a.Effects(t, bad.UUID); got != 1 {
		t.Fatalf("group A: effects of the message replayed twice = %d, want 1", got)
	}
	// A later message on the same partition: had a replay gone to the topic,
	// B would have handled it again before this one.
	after := consumertest.MsgWithID(watermill.NewUUID())
	a.Publish(t, after)
	b.WaitEffect(t, after.UUID)
	if got := b.Effects(t, bad.UUID); got != 1 {
		t.Fatalf("group B handled the message %d times, want 1: the replay reached another group", got)
	}

	// Cleanup: a second poisoned message, not replayed, stays.
	healed.Store(false)
	kept := consumertest.MsgWithID(watermill.NewUUID())
	kept.Metadata.Set("bug", "yes")
	a.Publish(t, kept)
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
