package messaging_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/messaging"
)

// countingPublisher counts the forwarder's publish attempts and refusals.
type countingPublisher struct {
	message.Publisher
	attempts, refusals atomic.Int64
	// refusedIDs counts refusals per message id.
	lastRefused atomic.Value
}

func (p *countingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.attempts.Add(1)
	err := p.Publisher.Publish(topic, msgs...)
	if err != nil {
		p.refusals.Add(1)
		p.lastRefused.Store(msgs[0].UUID)
	}
	return err
}

type parkingEnv struct {
	db    *sql.DB
	kafka messaging.KafkaConfig
	topic string
	ob    *messaging.Outbox
	out   *countingPublisher
}

// newParkingEnv makes a fresh database, a one-partition topic whose records may
// not exceed 8 KiB (max.message.bytes: a 10 KiB event is a record Kafka refuses
// for good, MESSAGE_TOO_LARGE), and an outbox; parking false turns parking off.
// start runs its forwarder. relay, if given, is the OutboxConfig.Relay.
func newParkingEnv(t *testing.T, parking bool, relay ...string) *parkingEnv {
	t.Helper()
	kcfg := testenv.Kafka(t)
	db := migrated(t)
	topic := testenv.TopicName(t, kcfg, "parked")
	admin, err := sarama.NewClusterAdmin(kcfg.Brokers, kcfg.ProducerConfig())
	if err != nil {
		t.Fatal(err)
	}
	maxBytes := "8192"
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"max.message.bytes": &maxBytes}}, false); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	cfg := messaging.OutboxConfig{BatchSize: 10, PollInterval: 10 * time.Millisecond,
		ResendInterval: 20 * time.Millisecond, AckDeadline: time.Second}
	if len(relay) > 0 {
		cfg.Relay = relay[0]
	}
	ob, err := messaging.NewOutbox(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !parking {
		messaging.DisableParkingForTest(ob)
	}
	out := &countingPublisher{Publisher: kcfg.NewPublisher(watermill.NopLogger{})}
	t.Cleanup(func() { _ = out.Close() })
	return &parkingEnv{db: db, kafka: kcfg, topic: topic, ob: ob, out: out}
}

func (e *parkingEnv) start(t *testing.T) {
	t.Helper()
	f, err := e.ob.NewForwarder(e.db, e.out, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	runForwarder(t, f.Forwarder)
}

// write commits one event of key with a payload of size bytes and returns its id.
func (e *parkingEnv) write(t *testing.T, key string, size int) string {
	t.Helper()
	m := message.NewMessage(watermill.NewUUID(), []byte(`"`+strings.Repeat("x", size)+`"`))
	m.Metadata.Set(events.MetadataKey, key)
	if err := messaging.InTx(context.Background(), e.db, func(ctx context.Context, tx *sql.Tx) error {
		return e.ob.Publish(ctx, tx, e.topic, m)
	}); err != nil {
		t.Fatal(err)
	}
	return m.UUID
}

func (e *parkingEnv) parked(t *testing.T) []messaging.ParkedRow {
	t.Helper()
	list, err := e.ob.ListParked(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func (e *parkingEnv) pending(t *testing.T) int {
	t.Helper()
	n, err := e.ob.Pending(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// inKafka returns the ids in the topic, in order.
func (e *parkingEnv) inKafka(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	for _, m := range testenv.ReadTopic(t, e.kafka, e.topic, n, 30*time.Second) {
		ids = append(ids, m.UUID)
	}
	return ids
}

func parkedIDs(rows []messaging.ParkedRow) []string {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.MessageID
	}
	return ids
}

// An event Kafka can never take (too large for the topic) is parked; the rows
// behind it (other keys) are forwarded; a later event of its key parks behind
// it; replaying the head while it is still too large parks it again in place;
// discarding it releases the next one, which is then forwarded.
func TestOversizedRowIsParkedAndRowsBehindFlow(t *testing.T) {
	t.Parallel()
	e := newParkingEnv(t, true)
	big := e.write(t, "order-big", 10<<10)
	var others []string
	for _, k := range []string{"order-1", "order-2", "order-3"} {
		others = append(others, e.write(t, k, 10))
	}
	e.start(t)
	waitFor(t, "the outbox to drain", 30*time.Second, func() bool { return e.pending(t) == 0 })
	list := e.parked(t)
	if len(list) != 1 || list[0].MessageID != big || list[0].Reason != messaging.ParkedTooLarge || !list[0].Head {
		t.Fatalf("parked = %+v, want only %s as message_too_large head", list, big)
	}
	if !strings.Contains(list[0].KafkaError, "too large") {
		t.Errorf("kafka error %q does not say too large", list[0].KafkaError)
	}
	if got := e.inKafka(t, 3); strings.Join(got, ",") != strings.Join(others, ",") {
		t.Fatalf("in Kafka %v, want %v", got, others)
	}

	behind := e.write(t, "order-big", 10) // small, but its key has a parked row
	after := e.write(t, "order-4", 10)
	waitFor(t, "the later row of the key to be parked", 30*time.Second, func() bool { return len(e.parked(t)) == 2 })
	list = e.parked(t)
	if got := parkedIDs(list); strings.Join(got, ",") != big+","+behind || list[1].Reason != messaging.ParkedBehind || list[1].Head {
		t.Fatalf("parked = %+v, want %s then %s behind it", list, big, behind)
	}
	waitFor(t, "order-4 to reach Kafka", 30*time.Second, func() bool { return testenv.TopicSize(t, e.kafka, e.topic) == 4 })
	if got := e.inKafka(t, 4); got[3] != after {
		t.Fatalf("in Kafka %v, want %s last", got, after)
	}

	ctx := context.Background()
	if _, err := e.ob.ReplayParked(ctx, e.db, list[1].ID); !errors.Is(err, messaging.ErrNotHead) {
		t.Fatalf("replaying the second row of a key: err = %v, want ErrNotHead", err)
	}
	if _, err := e.ob.ReplayParked(ctx, e.db, list[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replayed head, still too large, to be parked again", 30*time.Second, func() bool {
		l := e.parked(t)
		return len(l) == 2 && l[0].TimesParked == 2 && !l[0].Released
	})
	if got := parkedIDs(e.parked(t)); strings.Join(got, ",") != big+","+behind {
		t.Fatalf("after the failed replay parked = %v, want the same order", got)
	}

	if _, err := e.ob.DiscardParked(ctx, e.db, list[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the row behind the discarded one to be forwarded", 30*time.Second, func() bool {
		return len(e.parked(t)) == 0 && e.pending(t) == 0
	})
	if got := e.inKafka(t, 5); len(got) != 5 || got[4] != behind {
		t.Fatalf("in Kafka %v, want %s last", got, behind)
	}
	if e.ob.Parked() != 3 {
		t.Errorf("parked counter = %d, want 3 (oversized, behind, re-parked)", e.ob.Parked())
	}
}

// Replaying the head of a key after the cause is fixed (the topic now takes
// large records) forwards it and then the key's later parked rows, in order,
// one after another.
func TestReplayReleasesTheKeyInOrder(t *testing.T) {
	t.Parallel()
	e := newParkingEnv(t, true)
	e.start(t)
	want := []string{e.write(t, "order-k", 10<<10), e.write(t, "order-k", 10), e.write(t, "order-k", 20<<10), e.write(t, "order-k", 10)}
	waitFor(t, "the key's four rows to be parked", 30*time.Second, func() bool { return len(e.parked(t)) == 4 })

	admin, err := sarama.NewClusterAdmin(e.kafka.Brokers, e.kafka.ProducerConfig())
	if err != nil {
		t.Fatal(err)
	}
	maxBytes := "1048588"
	if err := admin.AlterConfig(sarama.TopicResource, e.topic, map[string]*string{"max.message.bytes": &maxBytes}, false); err != nil {
		t.Fatal(err)
	}
	admin.Close()

	head := e.parked(t)[0]
	if _, err := e.ob.ReplayParked(context.Background(), e.db, head.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the key's rows to be forwarded", 60*time.Second, func() bool { return len(e.parked(t)) == 0 && e.pending(t) == 0 })
	if got := e.inKafka(t, 4); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("in Kafka %v, want %v (park order)", got, want)
	}
}

// Negative control: with parking off, the oversized row is retried for ever and
// the rows behind it (other keys) never reach Kafka.
func TestWithoutParkingAnOversizedRowBlocksTheOutbox(t *testing.T) {
	t.Parallel()
	e := newParkingEnv(t, false)
	big := e.write(t, "order-big", 10<<10)
	e.write(t, "order-1", 10)
	e.start(t)
	waitFor(t, "five refusals of the oversized row", 60*time.Second, func() bool { return e.out.refusals.Load() >= 5 })
	if got, _ := e.out.lastRefused.Load().(string); got != big {
		t.Fatalf("last refused %q, want %s", got, big)
	}
	if n := e.pending(t); n != 2 {
		t.Fatalf("pending = %d, want 2: the oversized row and the row stuck behind it", n)
	}
	if n := testenv.TopicSize(t, e.kafka, e.topic); n != 0 {
		t.Fatalf("topic has %d messages, want 0: nothing passes the blocked row", n)
	}
	if rows := e.parked(t); len(rows) != 0 {
		t.Fatalf("parked %v with parking off", rows)
	}
}

// Outbox.Publish refuses an event over the size bounds with a permanent error
// and writes nothing.
func TestOutboxRefusesOversizedEvents(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	ob, err := messaging.NewOutbox(messaging.OutboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*message.Message{
		"metadata value": func() *message.Message {
			m := newMsg(1)
			m.Metadata.Set("correlation_id", strings.Repeat("a", messaging.MaxMetadataValueBytes+1))
			return m
		}(),
		"whole message": message.NewMessage(watermill.NewUUID(), make([]byte, messaging.MaxMessageBytes+1)),
	} {
		err := messaging.InTx(context.Background(), db, func(ctx context.Context, tx *sql.Tx) error {
			return ob.Publish(ctx, tx, "orders", m)
		})
		if !errors.Is(err, messaging.ErrMessageTooLarge) || !messaging.IsPermanent(err) {
			t.Errorf("%s: err = %v, want a permanent ErrMessageTooLarge", name, err)
		}
	}
	if n, _ := ob.Pending(context.Background(), db); n != 0 {
		t.Fatalf("%d rows written", n)
	}
}
