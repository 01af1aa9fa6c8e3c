package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// relayEnv is a fresh outbox database, a 3-partition topic and a batch-relay
// outbox.
type relayEnv struct {
	db    *sql.DB
	kafka kafka.Config
	topic string
	ob    *testOutbox
}

func newRelayEnv(t *testing.T, batch int) *relayEnv {
	t.Helper()
	testenv.NeedsServers(t, "MariaDB and Kafka")
	kcfg := testenv.Kafka(t)
	ob, err := newOutbox(outbox.Config{Relay: outbox.RelayBatch, BatchSize: batch,
		PollInterval: 10 * time.Millisecond, ResendInterval: 20 * time.Millisecond, AckDeadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &relayEnv{db: migrated(t), kafka: kcfg, topic: testenv.Topics(t, kcfg, 3, "relay")[0], ob: ob}
}

// writeVersions commits, in one transaction per version, versions events of
// each of keys (metadata "version" = 1..versions) and returns their ids in
// write order.
func (e *relayEnv) writeVersions(t *testing.T, keys, versions int) []string {
	t.Helper()
	var ids []string
	for v := 1; v <= versions; v++ {
		msgs := make([]*message.Message, keys)
		for k := range msgs {
			msgs[k] = message.NewMessage(watermill.NewUUID(), []byte(`{}`))
			msgs[k].Metadata.Set(events.MetadataKey, "order-"+strconv.Itoa(k))
			msgs[k].Metadata.Set("version", strconv.Itoa(v))
			ids = append(ids, msgs[k].UUID)
		}
		if err := sqldb.InTx(context.Background(), e.db, func(ctx context.Context, tx *sql.Tx) error {
			return e.ob.Publish(ctx, tx, e.topic, msgs...)
		}); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func (e *relayEnv) pending(t *testing.T) int {
	t.Helper()
	n, err := outbox.Pending(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// startRelay runs ob's forwarder over db, publishing to out, until the test ends.
func startRelay(t *testing.T, ob *testOutbox, db *sql.DB, out message.Publisher) {
	t.Helper()
	t.Cleanup(func() { _ = out.Close() })
	f, err := ob.NewForwarder(db, out, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunUntilCleanup(t, f.Forwarder)
}

// checkKafka reads n messages and checks that every id is there and that, per
// key, the first appearance of each version is in version order.
func (e *relayEnv) checkKafka(t *testing.T, n int, ids []string) {
	t.Helper()
	got := testenv.ReadTopic(t, e.kafka, e.topic, n, 30*time.Second)
	if len(got) < n {
		t.Fatalf("read %d messages from Kafka, want %d", len(got), n)
	}
	seen := map[string]bool{}
	last := map[string]int{}
	for _, m := range got {
		if seen[m.UUID] {
			continue
		}
		seen[m.UUID] = true
		key := m.Metadata.Get(events.MetadataKey)
		v, _ := strconv.Atoi(m.Metadata.Get("version"))
		if v != last[key]+1 {
			t.Errorf("key %s: version %d first appears after version %d", key, v, last[key])
		}
		last[key] = v
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("event %s never reached Kafka", id)
		}
	}
}

// The batch relay with the real batch produce forwards every row, keeps each
// key's order and empties the outbox.
func TestBatchRelayForwardsEverything(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t, 100)
	ids := e.writeVersions(t, 20, 15) // 300 rows: several batches
	startRelay(t, e.ob, e.db, e.kafka.NewPublisher(watermill.NopLogger{}))
	testenv.WaitFor(t, "the outbox to drain", 60*time.Second, func() bool { return e.pending(t) == 0 })
	e.checkKafka(t, len(ids), ids)
}

// refusingPublisher refuses one chosen message while refusing is set, and
// records, at each refusal after the first, how many rows the outbox holds.
type refusingPublisher struct {
	message.Publisher
	victim   string
	refusing atomic.Bool
	refusals atomic.Int64
	sent     atomic.Int64
}

var errRefused = errors.New("test: Kafka refuses this message")

func (p *refusingPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		if m.UUID == p.victim && p.refusing.Load() {
			p.refusals.Add(1)
			return errRefused
		}
		if err := p.Publisher.Publish(topic, m); err != nil {
			return err
		}
		p.sent.Add(1)
	}
	return nil
}

// A message Kafka refuses in the middle of a batch keeps the whole batch's
// rows, also those Kafka acknowledged before it: the polling transaction rolls
// back. Once Kafka takes it, the batch is sent again (duplicates, absorbed by
// consumers' inboxes), the outbox empties and each key's versions first appear
// in order.
func TestBatchRelayRefusalKeepsTheWholeBatch(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t, 100)
	ids := e.writeVersions(t, 4, 5) // 20 rows, one batch
	out := &refusingPublisher{Publisher: e.kafka.NewPublisher(watermill.NopLogger{}), victim: ids[9]}
	out.refusing.Store(true)
	startRelay(t, e.ob, e.db, out)
	testenv.WaitFor(t, "the batch to be refused twice", 30*time.Second, func() bool { return out.refusals.Load() >= 2 })
	// A second refusal means the first polling transaction ended: it rolled back.
	if n := e.pending(t); n != len(ids) {
		t.Fatalf("after a refusal mid-batch the outbox holds %d rows, want all %d", n, len(ids))
	}
	if out.sent.Load() < 9 {
		t.Fatalf("only %d messages were sent before the refused one, want the 9 before it", out.sent.Load())
	}
	out.refusing.Store(false)
	testenv.WaitFor(t, "the outbox to drain", 30*time.Second, func() bool { return e.pending(t) == 0 })
	e.checkKafka(t, int(out.sent.Load()), ids)
}
