// Package consumertest runs the consumer stack (package consumer) in tests as
// a service runs it: a fresh topic, poison topic, database and consumer group,
// one consumer named "test" whose handler the test gives, run by a
// lifecycle.Lifecycle on real servers (internal/testenv's addresses).
package consumertest

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/servicedb"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// Handler is the name of the consumer a rig runs.
const Handler = "test"

// effectsMigrations give the consumers under test a table their handler writes to.
var effectsMigrations = fstest.MapFS{"migrations/00001_effects.sql": {Data: []byte(`
-- +goose Up
CREATE TABLE effects (id BIGINT AUTO_INCREMENT PRIMARY KEY, message_id VARCHAR(255) NOT NULL);
-- +goose Down
DROP TABLE effects;
`)}}

// Rig is one Consumers consuming a fresh topic with a test handler, on a fresh
// database and consumer group.
type Rig struct {
	Kafka              kafka.Config
	Topic, PoisonTopic string
	// DB is the test database as its administrator.
	DB        *sql.DB
	Consumers *consumer.Consumers
	// Group is the consumers' consumer group.
	Group string

	mu       sync.Mutex
	attempts map[string]int
}

// Effect is a handler's effect: one row in effects, written like a repository
// does (joining the inbox's transaction when there is one).
func (r *Rig) Effect(msg *message.Message) error {
	return sqldb.InTx(msg.Context(), r.DB, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO effects (message_id) VALUES (?)", msg.UUID)
		return err
	})
}

// Attempt counts one attempt of msg and returns how many there were.
func (r *Rig) Attempt(msg *message.Message) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts[msg.UUID]++
	return r.attempts[msg.UUID]
}

// AttemptsOf is how many attempts of message id were counted.
func (r *Rig) AttemptsOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[id]
}

// New runs a rig: configure, if not nil, changes the consumers' config (the
// strategy, the retries, ...) before they start; handler makes the test
// handler of the rig. The test's cleanup stops it.
func New(t *testing.T, configure func(*consumer.Config), handler func(r *Rig) message.NoPublishHandlerFunc, opts ...consumer.Option) *Rig {
	t.Helper()
	r, cfg, db := NewConfig(t)
	if configure != nil {
		configure(&cfg)
	}
	run := Start(t, cfg, db, lifecycle.Config{}, r.Topic, handler(r), opts...)
	r.Consumers, r.Group = run.Consumers, cfg.ConsumerGroup
	t.Cleanup(func() {
		run.Cancel()
		if err := <-run.Done; err != nil {
			t.Errorf("lifecycle.Run: %v", err)
		}
	})
	return r
}

// NewConfig makes a fresh topic (2 partitions), poison topic, database and
// consumer group, and returns the rig (not running yet), the consumers'
// config for them (quick retries; DB and Poison are set by Start) and the
// database's config.
func NewConfig(t *testing.T) (*Rig, consumer.Config, sqldb.Config) {
	t.Helper()
	return NewConfigPartitions(t, 2)
}

// NewConfigPartitions is NewConfig with a topic of the given partitions.
func NewConfigPartitions(t *testing.T, partitions int32) (*Rig, consumer.Config, sqldb.Config) {
	t.Helper()
	kc := testenv.Kafka(t)
	topics := testenv.Topics(t, kc, partitions, "events", "poison")
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	r := &Rig{Kafka: kc, Topic: topics[0], PoisonTopic: topics[1], DB: d.Admin, attempts: map[string]int{}}
	return r, consumer.Config{
		Kafka:         kc,
		Retry:         consumer.RetryConfig{MaxRetries: 2, InitialInterval: 20 * time.Millisecond, MaxInterval: 50 * time.Millisecond},
		ConsumerGroup: testenv.Group(t, kc, "group"),
		PoisonTopic:   r.PoisonTopic,
	}, d.DBConfig()
}

// Running is one run of consumers wired as a service wires them: the
// database opened and migrated, one consumer of a topic, run by a Lifecycle.
type Running struct {
	Consumers *consumer.Consumers
	Lifecycle *lifecycle.Lifecycle
	Cancel    context.CancelFunc
	Done      chan error
}

// Start runs handler as the consumer Handler of topic with cfg, on the
// database of db (migrated as a service's, with an effects table), until the
// returned run is cancelled.
func Start(t *testing.T, cfg consumer.Config, db sqldb.Config, stop lifecycle.Config, topic string, handler message.NoPublishHandlerFunc, opts ...consumer.Option) *Running {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	pool, err := sqldb.OpenAndMigrate(context.Background(), db, logger, servicedb.Migrations(effectsMigrations)...)
	if err != nil {
		t.Fatal(err)
	}
	poison := cfg.Kafka.NewPoisonPublisher(watermill.NopLogger{})
	cfg.DB, cfg.Poison, cfg.Logger = pool, poison, logger
	consumers, err := consumer.NewConsumers(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	consumers.Handle(Handler, topic, handler)
	ctx, cancel := context.WithCancel(context.Background())
	run := &Running{Consumers: consumers, Lifecycle: lifecycle.New(stop, logger), Cancel: cancel, Done: make(chan error, 1)}
	go func() {
		run.Done <- run.Lifecycle.Run(ctx, lifecycle.Parts{Consumers: consumers, Clients: []io.Closer{poison, pool}})
	}()
	return run
}

// Publish sends msgs to the rig's topic through a keyed Kafka publisher (key
// "key-1" for a message without one).
func (r *Rig) Publish(t *testing.T, msgs ...*message.Message) {
	t.Helper()
	pub := r.Kafka.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	for _, m := range msgs {
		if m.Metadata.Get(kafka.MetadataKey) == "" {
			m.Metadata.Set(kafka.MetadataKey, "key-1")
		}
		if err := pub.Publish(r.Topic, m.Copy()); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

// Effects is how many effects message id had.
func (r *Rig) Effects(t *testing.T, id string) int {
	t.Helper()
	var n int
	if err := r.DB.QueryRow("SELECT COUNT(*) FROM effects WHERE message_id = ?", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// WaitProcessed waits until the inbox recorded the message id.
func (r *Rig) WaitProcessed(t *testing.T, id string) {
	t.Helper()
	testenv.WaitFor(t, "message "+id+" processed", 60*time.Second, func() bool {
		ok, err := r.Consumers.Inbox().Processed(context.Background(), id)
		return err == nil && ok
	})
}

// WaitEffect waits until message id had its effect.
func (r *Rig) WaitEffect(t *testing.T, id string) {
	t.Helper()
	testenv.WaitFor(t, "an effect of "+id, 60*time.Second, func() bool { return r.Effects(t, id) > 0 })
}

// MsgWithID is a message with id and an empty JSON payload.
func MsgWithID(id string) *message.Message { return message.NewMessage(id, []byte(`{}`)) }

// Keyed is a message with id and Kafka key key.
func Keyed(id, key string) *message.Message {
	m := MsgWithID(id)
	m.Metadata.Set(kafka.MetadataKey, key)
	return m
}

// EffectOrder returns the ids of the messages that had an effect, in effect
// order; with ids given, only those among them.
func (r *Rig) EffectOrder(t *testing.T, ids ...string) []string {
	t.Helper()
	rows, err := r.DB.Query("SELECT message_id FROM effects ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 || slices.Contains(ids, id) {
			out = append(out, id)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// KeysOnPartitions returns one Kafka key per partition of a topic with n
// partitions, as the producers' hash partitioner places them.
func KeysOnPartitions(t *testing.T, topic string, n int32) []string {
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

// NewRig is a rig on topic whose effects go to db (the test database as its
// administrator, with an effects table): for a second consumer group that
// Start runs on its own database.
func NewRig(kc kafka.Config, topic, poisonTopic string, db *sql.DB) *Rig {
	return &Rig{Kafka: kc, Topic: topic, PoisonTopic: poisonTopic, DB: db, attempts: map[string]int{}}
}
