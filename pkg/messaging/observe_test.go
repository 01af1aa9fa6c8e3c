package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// hookLog records what messaging.Hooks are told.
type hookLog struct {
	mu         sync.Mutex
	retries    int
	duplicates int
	poisoned   map[string]int
	routers    int
}

func (l *hookLog) hooks() messaging.Hooks {
	return messaging.Hooks{
		Retried:   func() { l.mu.Lock(); l.retries++; l.mu.Unlock() },
		Duplicate: func() { l.mu.Lock(); l.duplicates++; l.mu.Unlock() },
		Poisoned:  func(r string) { l.mu.Lock(); l.poisoned[r]++; l.mu.Unlock() },
	}
}

// TestConsumerHooksReportWhatHappens: on one partition, a message that fails
// twice and then succeeds (two retries), a message refused for good (poisoned
// at once, with its reason code, no retry), a message delivered twice (one
// duplicate) and a marker. The hooks must be told exactly that, and the
// router hook must have seen the router.
func TestConsumerHooksReportWhatHappens(t *testing.T) {
	t.Parallel()
	log := &hookLog{poisoned: map[string]int{}}
	flaky, bad, dup, marker := watermill.NewUUID(), watermill.NewUUID(), watermill.NewUUID(), watermill.NewUUID()
	r := newConsumerRig(t, func(r *consumerRig) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			switch {
			case msg.UUID == bad:
				return failure.PermanentCode("bad_thing", errors.New("refused for good"))
			case msg.UUID == flaky && r.attempt(msg) <= 2:
				return errors.New("transient failure")
			}
			return r.effect(msg)
		}
	}, func(cs *messaging.Consumers) {
		cs.SetHooks(log.hooks())
		cs.OnRouter(func(*message.Router) { log.mu.Lock(); log.routers++; log.mu.Unlock() })
	})
	r.publish(t, msgWithID(flaky), msgWithID(bad), msgWithID(dup), msgWithID(dup), msgWithID(marker))
	waitEffect(t, r, marker) // one key, one partition: everything before it was handled
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.retries != 2 || log.duplicates != 1 || len(log.poisoned) != 1 || log.poisoned["bad_thing"] != 1 || log.routers != 1 {
		t.Fatalf("hooks told retries=%d duplicates=%d poisoned=%v routers=%d; want 2, 1, map[bad_thing:1], 1",
			log.retries, log.duplicates, log.poisoned, log.routers)
	}
}

// TestOutboxBacklogSamplesThePrimaryKey: an empty outbox is 0 rows, age 0;
// rows written through Outbox.Publish are counted, and the oldest one's age is
// measured by the database's clock.
func TestOutboxBacklogSamplesThePrimaryKey(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t, testenv.OrderDBAddr)
	if err := sqldb.Migrate(context.Background(), db, slog.New(slog.DiscardHandler), messaging.Migrations); err != nil {
		t.Fatal(err)
	}
	b, err := messaging.OutboxBacklog(context.Background(), db)
	if err != nil || b != (messaging.Backlog{}) {
		t.Fatalf("empty outbox: %+v, %v; want zero", b, err)
	}
	if _, err := db.Exec("INSERT INTO watermill_outbox (uuid, payload, metadata, created_at) VALUES ('a', '{}', '{}', CURRENT_TIMESTAMP - INTERVAL 30 SECOND), ('b', '{}', '{}', CURRENT_TIMESTAMP)"); err != nil {
		t.Fatal(err)
	}
	b, err = messaging.OutboxBacklog(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if b.Pending != 2 || b.OldestAge < 29*time.Second || b.OldestAge > 10*time.Minute || b.Parked != 0 {
		t.Fatalf("backlog %+v; want 2 rows, the oldest about 30 s old, none parked", b)
	}
}

// TestLagReaderCountsWhatTheGroupHasNotCommitted: a group that has committed
// nothing on a topic holding three messages lags by three (the committed case
// is covered live by the services' metrics tests).
func TestLagReaderCountsWhatTheGroupHasNotCommitted(t *testing.T) {
	t.Parallel()
	kc := testenv.Kafka(t)
	topic := testenv.Topics(t, kc, 2, "lag")[0]
	pub := kc.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	for i := range 3 {
		m := msgWithID(watermill.NewUUID())
		m.Metadata.Set(kafka.MetadataKey, fmt.Sprint("key-", i))
		if err := pub.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
	}
	lag := kafka.NewLagReader(kc)
	defer lag.Close()
	sub := kafka.Subscription{Group: testenv.UniqueName(t, "lag"), Topic: topic}
	lags, err := lag.Read([]kafka.Subscription{sub, sub}) // a repeated subscription is read once
	if err != nil {
		t.Fatal(err)
	}
	if len(lags) != 2 || lags[0].Messages+lags[1].Messages != 3 {
		t.Fatalf("lag %+v; want 2 partitions lagging by 3 messages in all", lags)
	}
}
