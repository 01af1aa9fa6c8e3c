package parking_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/outbox/parking"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
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
	db     *sql.DB
	kafka  kafka.Config
	topic  string
	ob     *outbox.Outbox
	config outbox.Config // the forwarder's
	parked *parking.Parking
	out    *countingPublisher
}

// newParkingEnv makes a fresh database, a one-partition topic whose records may
// not exceed 8 KiB (max.message.bytes: a 10 KiB event is a record Kafka refuses
// for good, MESSAGE_TOO_LARGE), and an outbox; parking false turns parking off.
// start runs its forwarder. relay, if given, is the outbox.Config.Relay.
func newParkingEnv(t *testing.T, withParking bool, relay ...string) *parkingEnv {
	t.Helper()
	kcfg := testenv.Kafka(t)
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil) // as the migration user; the code under test gets the service user's DSN
	db := d.Admin
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
	ob := outbox.New()
	parked, err := parking.New(parking.Config{DB: db, Outbox: ob})
	if err != nil {
		t.Fatal(err)
	}
	out := &countingPublisher{Publisher: kcfg.NewPublisher(watermill.NopLogger{})}
	t.Cleanup(func() { _ = out.Close() })
	cfg := outbox.Config{BatchSize: 10, PollInterval: 10 * time.Millisecond, ResendInterval: 20 * time.Millisecond,
		AckDeadline: time.Second, DB: db, Publisher: out, Outbox: ob}
	if len(relay) > 0 {
		cfg.Relay = relay[0]
	}
	if withParking {
		cfg.Parking = parked.Publisher
	}
	return &parkingEnv{db: db, kafka: kcfg, topic: topic, ob: ob, config: cfg, parked: parked, out: out}
}

// start runs the forwarder, publishing to out (the counting publisher if nil).
func (e *parkingEnv) start(t *testing.T, out ...message.Publisher) {
	t.Helper()
	c := e.config
	if len(out) > 0 {
		c.Publisher = out[0]
	}
	f, err := outbox.NewForwarder(c)
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunUntilCleanup(t, f.Forwarder)
}

// write commits one event of key with a payload of size bytes and returns its id.
func (e *parkingEnv) write(t *testing.T, key string, size int) string {
	t.Helper()
	m := message.NewMessage(watermill.NewUUID(), []byte(`"`+strings.Repeat("x", size)+`"`))
	m.Metadata.Set(events.MetadataKey, key)
	if err := sqldb.InTx(context.Background(), e.db, func(ctx context.Context, tx *sql.Tx) error {
		return e.ob.Publish(ctx, tx, e.topic, m)
	}); err != nil {
		t.Fatal(err)
	}
	return m.UUID
}

func (e *parkingEnv) list(t *testing.T) []parking.Row {
	t.Helper()
	list, err := e.parked.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func (e *parkingEnv) pending(t *testing.T) int {
	t.Helper()
	n, err := outbox.Pending(context.Background(), e.db)
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

func parkedIDs(rows []parking.Row) []string {
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
	testenv.WaitFor(t, "the outbox to drain", 30*time.Second, func() bool { return e.pending(t) == 0 })
	list := e.list(t)
	if len(list) != 1 || list[0].MessageID != big || list[0].Cause != kafka.RefusedTooLarge || !list[0].Head {
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
	testenv.WaitFor(t, "the later row of the key to be parked", 30*time.Second, func() bool { return len(e.list(t)) == 2 })
	list = e.list(t)
	if got := parkedIDs(list); strings.Join(got, ",") != big+","+behind || list[1].Cause != parking.Behind || list[1].Head {
		t.Fatalf("parked = %+v, want %s then %s behind it", list, big, behind)
	}
	testenv.WaitFor(t, "order-4 to reach Kafka", 30*time.Second, func() bool { return testenv.TopicSize(t, e.kafka, e.topic) == 4 })
	if got := e.inKafka(t, 4); got[3] != after {
		t.Fatalf("in Kafka %v, want %s last", got, after)
	}

	ctx := context.Background()
	if _, err := e.parked.Replay(ctx, list[1].ID); !errors.Is(err, parking.ErrNotHead) {
		t.Fatalf("replaying the second row of a key: err = %v, want ErrNotHead", err)
	}
	if _, err := e.parked.Replay(ctx, list[0].ID); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the replayed head, still too large, to be parked again", 30*time.Second, func() bool {
		l := e.list(t)
		return len(l) == 2 && l[0].TimesParked == 2 && !l[0].Released
	})
	if got := parkedIDs(e.list(t)); strings.Join(got, ",") != big+","+behind {
		t.Fatalf("after the failed replay parked = %v, want the same order", got)
	}

	if _, err := e.parked.Discard(ctx, list[0].ID); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the row behind the discarded one to be forwarded", 30*time.Second, func() bool {
		return len(e.list(t)) == 0 && e.pending(t) == 0
	})
	if got := e.inKafka(t, 5); len(got) != 5 || got[4] != behind {
		t.Fatalf("in Kafka %v, want %s last", got, behind)
	}
	if e.parked.Parked() != 3 {
		t.Errorf("parked counter = %d, want 3 (oversized, behind, re-parked)", e.parked.Parked())
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
	testenv.WaitFor(t, "the key's four rows to be parked", 30*time.Second, func() bool { return len(e.list(t)) == 4 })

	admin, err := sarama.NewClusterAdmin(e.kafka.Brokers, e.kafka.ProducerConfig())
	if err != nil {
		t.Fatal(err)
	}
	maxBytes := "1048588"
	if err := admin.AlterConfig(sarama.TopicResource, e.topic, map[string]*string{"max.message.bytes": &maxBytes}, false); err != nil {
		t.Fatal(err)
	}
	admin.Close()

	head := e.list(t)[0]
	if _, err := e.parked.Replay(context.Background(), head.ID); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the key's rows to be forwarded", 60*time.Second, func() bool { return len(e.list(t)) == 0 && e.pending(t) == 0 })
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
	testenv.WaitFor(t, "five refusals of the oversized row", 60*time.Second, func() bool { return e.out.refusals.Load() >= 5 })
	if got, _ := e.out.lastRefused.Load().(string); got != big {
		t.Fatalf("last refused %q, want %s", got, big)
	}
	if n := e.pending(t); n != 2 {
		t.Fatalf("pending = %d, want 2: the oversized row and the row stuck behind it", n)
	}
	if n := testenv.TopicSize(t, e.kafka, e.topic); n != 0 {
		t.Fatalf("topic has %d messages, want 0: nothing passes the blocked row", n)
	}
	if rows := e.list(t); len(rows) != 0 {
		t.Fatalf("parked %v with parking off", rows)
	}
}

// An oversized event in the middle of a batch on a one-partition topic makes
// the broker refuse the partition's whole record batch; the relay then
// publishes the next transaction one message per produce, so only the
// oversized row is parked and the others are forwarded.
func TestBatchRelayParksOnlyTheUnpublishableRow(t *testing.T) {
	t.Parallel()
	e := newParkingEnv(t, true, outbox.RelayBatch)
	var others []string
	for i := range 3 {
		others = append(others, e.write(t, fmt.Sprintf("order-a%d", i), 10))
	}
	big := e.write(t, "order-big", 10<<10)
	for i := range 3 {
		others = append(others, e.write(t, fmt.Sprintf("order-b%d", i), 10))
	}
	kout := e.kafka.NewPublisher(watermill.NopLogger{})
	t.Cleanup(func() { _ = kout.Close() })
	e.start(t, kout) // the real batch produce
	testenv.WaitFor(t, "the outbox to drain", 30*time.Second, func() bool { return e.pending(t) == 0 })
	list := e.list(t)
	if len(list) != 1 || list[0].MessageID != big || list[0].Cause != kafka.RefusedTooLarge {
		t.Fatalf("parked = %+v, want only %s as message_too_large", list, big)
	}
	got := map[string]bool{}
	for _, id := range e.inKafka(t, int(testenv.TopicSize(t, e.kafka, e.topic))) { // with the refused batch's duplicates
		got[id] = true
	}
	for _, id := range others {
		if !got[id] {
			t.Errorf("event %s never reached Kafka", id)
		}
	}
}
