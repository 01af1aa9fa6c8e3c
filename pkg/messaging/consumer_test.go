package messaging_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// effectsMigrations gives the consumers under test a table its handler writes to.
var effectsMigrations = fstest.MapFS{"migrations/00001_effects.sql": {Data: []byte(`
-- +goose Up
CREATE TABLE effects (id BIGINT AUTO_INCREMENT PRIMARY KEY, message_id VARCHAR(255) NOT NULL);
-- +goose Down
DROP TABLE effects;
`)}}

// consumerRig is one Consumers consuming a fresh topic with a test handler, on a fresh
// database and consumer group.
type consumerRig struct {
	kafka              kafka.Config
	topic, poisonTopic string
	db                 *sql.DB
	consumers          *messaging.Consumers

	mu       sync.Mutex
	attempts map[string]int
}

// effect is the handler's effect: one row in effects, written like a repository
// does (joining the inbox's transaction when there is one).
func (r *consumerRig) effect(msg *message.Message) error {
	return sqldb.InTx(msg.Context(), r.db, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO effects (message_id) VALUES (?)", msg.UUID)
		return err
	})
}

func (r *consumerRig) attempt(msg *message.Message) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts[msg.UUID]++
	return r.attempts[msg.UUID]
}

func (r *consumerRig) attemptsOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[id]
}

func newConsumerRig(t *testing.T, handler func(r *consumerRig) message.NoPublishHandlerFunc, adjust func(*messaging.Consumers)) *consumerRig {
	t.Helper()
	return newConsumerRigWith(t, nil, handler, adjust)
}

// newConsumerRigWith is newConsumerRig with the consumers' config changed by
// configure (e.g. another failure strategy) before they start.
func newConsumerRigWith(t *testing.T, configure func(*messaging.Config), handler func(r *consumerRig) message.NoPublishHandlerFunc, adjust func(*messaging.Consumers)) *consumerRig {
	t.Helper()
	r, cfg := newRigConfig(t)
	if configure != nil {
		configure(&cfg)
	}
	run := startConsumers(t, cfg, lifecycle.Config{}, r.topic, handler(r), adjust)
	r.consumers = run.consumers
	t.Cleanup(func() {
		run.cancel()
		if err := <-run.done; err != nil {
			t.Errorf("lifecycle.Run: %v", err)
		}
	})
	return r
}

// newRigConfig makes a fresh topic (2 partitions), poison topic, database and
// consumer group, and returns the rig (not running yet) and the consumers'
// config for them.
func newRigConfig(t *testing.T) (*consumerRig, messaging.Config) {
	t.Helper()
	kc := testenv.Kafka(t)
	topics := testenv.Topics(t, kc, 2, "events", "poison")
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	r := &consumerRig{kafka: kc, topic: topics[0], poisonTopic: topics[1], db: d.Admin, attempts: map[string]int{}}
	return r, messaging.Config{
		DB:            d.DBConfig(),
		Kafka:         kc,
		Retry:         messaging.RetryConfig{MaxRetries: 2, InitialInterval: 20 * time.Millisecond, MaxInterval: 50 * time.Millisecond},
		ConsumerGroup: testenv.Group(t, kc, "group"),
		PoisonTopic:   r.poisonTopic,
	}
}

// running is one run of consumers wired as a service wires them: the
// database opened and migrated, one consumer of topic, run by a Lifecycle.
type running struct {
	consumers *messaging.Consumers
	lifecycle *lifecycle.Lifecycle
	cancel    context.CancelFunc
	done      chan error
}

// startConsumers runs handler as the consumer of topic with cfg until the
// returned run is cancelled; adjust, if not nil, changes the consumers first.
func startConsumers(t *testing.T, cfg messaging.Config, stop lifecycle.Config, topic string, handler message.NoPublishHandlerFunc, adjust func(*messaging.Consumers)) *running {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	db, err := sqldb.OpenAndMigrate(context.Background(), cfg.DB, logger, messaging.Migrations, messaging.ServiceMigrations(effectsMigrations))
	if err != nil {
		t.Fatal(err)
	}
	poison := cfg.Kafka.NewPoisonPublisher(watermill.NopLogger{})
	consumers, err := messaging.NewConsumers(cfg, db, poison, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	consumers.Handle("test", topic, handler)
	if adjust != nil {
		adjust(consumers)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{consumers: consumers, lifecycle: lifecycle.New(stop, logger), cancel: cancel, done: make(chan error, 1)}
	go func() {
		run.done <- run.lifecycle.Run(ctx, lifecycle.Parts{Consumers: consumers, Clients: []io.Closer{poison, db}})
	}()
	return run
}

// publish sends msgs to the rig's topic through a keyed Kafka publisher.
func (r *consumerRig) publish(t *testing.T, msgs ...*message.Message) {
	t.Helper()
	pub := r.kafka.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	for _, m := range msgs {
		if m.Metadata.Get(events.MetadataKey) == "" {
			m.Metadata.Set(events.MetadataKey, "key-1")
		}
		if err := pub.Publish(r.topic, m.Copy()); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

func (r *consumerRig) effects(t *testing.T, id string) int {
	t.Helper()
	var n int
	if err := r.db.QueryRow("SELECT COUNT(*) FROM effects WHERE message_id = ?", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitProcessed waits until the inbox recorded the message id.
func (r *consumerRig) waitProcessed(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if ok, err := r.consumers.Inbox().Processed(context.Background(), id); err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("message %s was not processed within 60 s", id)
}

func msgWithID(id string) *message.Message { return message.NewMessage(id, []byte(`{}`)) }

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
			r := newConsumerRig(t, func(r *consumerRig) message.NoPublishHandlerFunc { return r.effect },
				func(cs *messaging.Consumers) {
					if tt.disabled {
						messaging.DisableInboxForTest(cs)
					}
				})
			id := watermill.NewUUID()
			marker := watermill.NewUUID()
			r.publish(t, msgWithID(id), msgWithID(id), msgWithID(id), msgWithID(marker))
			waitEffect(t, r, marker) // same key, same partition: the three came before
			if got := r.effects(t, id); got != tt.wantEffects {
				t.Fatalf("effects of a message delivered 3 times = %d, want %d", got, tt.wantEffects)
			}
		})
	}
}

func waitEffect(t *testing.T, r *consumerRig, id string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for r.effects(t, id) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no effect of %s within 60 s", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTransientFailuresAreRetriedNotPoisoned: a handler that writes its effect and
// then fails twice succeeds on the third attempt; the effect is there once (the
// failed attempts rolled back) and nothing is poisoned.
func TestTransientFailuresAreRetriedNotPoisoned(t *testing.T) {
	t.Parallel()
	r := newConsumerRig(t, func(r *consumerRig) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			if err := r.effect(msg); err != nil {
				return err
			}
			if r.attempt(msg) <= 2 {
				return errors.New("transient failure")
			}
			return nil
		}
	}, nil)
	id := watermill.NewUUID()
	r.publish(t, msgWithID(id))
	r.waitProcessed(t, id)
	if got := r.effects(t, id); got != 1 {
		t.Fatalf("effects = %d, want 1", got)
	}
	if got := r.attemptsOf(id); got != 3 {
		t.Fatalf("attempts = %d, want 3", got)
	}
	// The message succeeded, so had it been poisoned that would have happened
	// already (instead): the poison topic's offsets say whether it was.
	if n := testenv.TopicSize(t, r.kafka, r.poisonTopic); n != 0 {
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
	r := newConsumerRig(t, func(r *consumerRig) message.NoPublishHandlerFunc {
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
			r.attempt(msg)
			if err := decode(msg); err != nil {
				return err
			}
			return r.effect(msg)
		}
	}, nil)
	for _, tt := range tests {
		r.publish(t, tt.msg)
	}
	// The next valid message still goes through.
	next := validEvent(watermill.NewUUID())
	okEvent := func() *message.Message {
		m := next.Copy()
		m.Payload = []byte(`{"type":"order.placed","schema_version":1,"order_id":"o-2","order_version":1,"occurred_at":"2026-01-01T00:00:00Z","data":{"customer_id":"c-1","amount_cents":1,"currency":"EUR"}}`)
		return m
	}()
	r.publish(t, okEvent)
	waitEffect(t, r, okEvent.UUID)

	poisoned := testenv.ReadTopic(t, r.kafka, r.poisonTopic, len(tests), 30*time.Second)
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
			if got := p.Metadata.Get(middleware.PoisonedTopicKey); got != r.topic {
				t.Errorf("topic_poisoned = %q, want %q", got, r.topic)
			}
			if got := p.Metadata.Get(middleware.PoisonedHandlerKey); got != "test" {
				t.Errorf("handler_poisoned = %q, want test", got)
			}
			if got := r.attemptsOf(tt.msg.UUID); got != tt.wantAttempts {
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
	r := newConsumerRig(t, func(r *consumerRig) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			if n := r.attempt(msg); n <= 7 { // retries allow 3 attempts per delivery
				return fmt.Errorf("attempt %d: %w", n, driver.ErrBadConn)
			}
			return r.effect(msg)
		}
	}, nil)
	id := watermill.NewUUID()
	r.publish(t, msgWithID(id))
	waitEffect(t, r, id) // a poisoned message would have been acknowledged without its effect
	if n := testenv.TopicSize(t, r.kafka, r.poisonTopic); n != 0 {
		t.Fatalf("poison topic holds %d messages, want 0", n)
	}
}
