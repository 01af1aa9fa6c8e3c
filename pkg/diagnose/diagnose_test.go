package diagnose_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/consumer/stop"
	"github.com/onceflow/onceflow/pkg/diagnose"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// consumers is a service's consumers as the prober sees them.
type consumers struct {
	health   error
	paused   []consumer.Paused
	retrying []consumer.Retrying
}

func (c consumers) Health() error             { return c.health }
func (c consumers) Paused() []consumer.Paused { return c.paused }
func (c consumers) Retrying(key string) []consumer.Retrying {
	var out []consumer.Retrying
	for _, r := range c.retrying {
		if r.Key == key {
			out = append(out, r)
		}
	}
	return out
}

func codes(holds []diagnose.Hold) []string {
	var out []string
	for _, h := range holds {
		out = append(out, h.Code)
	}
	return out
}

// TestHolds: each probe names the key's hold, in the order a message meets
// them, and nothing of another key.
func TestHolds(t *testing.T) {
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	// The outbox rows as a service writes them (the forwarder's envelope).
	ob := outbox.New()
	for _, key := range []string{"held", "other"} {
		if err := sqldb.InTx(context.Background(), d.Admin, func(ctx context.Context, tx *sql.Tx) error {
			ev := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
			ev.Metadata.Set(kafka.MetadataKey, key)
			return ob.Publish(ctx, tx, "orders", ev)
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`INSERT INTO outbox_parked (message_id, partition_key, topic, payload, metadata, reason, kafka_error)
			VALUES ('m-0', 'held', 'orders', '{}', '{}', 'message_too_large', 'too large')`,
		"INSERT INTO consumer_parked_keys (consumer_group, handler, partition_key) VALUES ('payment-service', 'payment.order-events', 'held')",
		"INSERT INTO consumer_parked_keys (consumer_group, handler, partition_key) VALUES ('another-group', 'h', 'other')",
		`INSERT INTO consumer_requeue (uuid, metadata, consumer_group, handler, delayed_until)
			VALUES ('m-1', '{"partition_key":"held","requeues":"2"}', 'payment-service', 'payment.order-events', UTC_TIMESTAMP(6) + INTERVAL 1 MINUTE)`,
		`INSERT INTO consumer_requeue (uuid, metadata, consumer_group, handler, delayed_until)
			VALUES ('m-2', '{"partition_key":"other"}', 'another-group', 'h', UTC_TIMESTAMP(6))`,
	} {
		if _, err := d.Admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	stopped := &stop.StoppedError{Consumer: "payment.order-events", MessageID: "m-9", Key: "x", ReasonCode: "handler_failed", Since: time.Now()}
	busy := consumers{
		health:   errors.Join(errors.New("another strategy's failure"), stopped),
		paused:   []consumer.Paused{{Consumer: "payment.order-events", Since: time.Now(), Held: 3}},
		retrying: []consumer.Retrying{{Consumer: "payment.order-events", MessageID: "m-3", Key: "held", Attempts: 2, NextTry: time.Now()}},
	}
	db := d.Open(t, 2)
	down, err := sql.Open("mysql", "nobody@tcp(127.0.0.1:1)/none")
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name      string
		key       string
		db        *sql.DB
		consumers diagnose.Consumers
		want      []string
	}{
		{"every hold of the key, in path order", "held", db, busy,
			[]string{diagnose.CodeConsumerStopped, diagnose.CodeConsumerPaused, diagnose.CodeRetrying, diagnose.CodeRequeued,
				diagnose.CodeKeyParked, diagnose.CodeOutboxParked, diagnose.CodeOutboxBacklog}},
		{"another group's parked key and delayed message are not ours", "other", db, consumers{}, []string{diagnose.CodeOutboxBacklog}},
		{"nothing", "free", db, nil, nil},
		{"the database down: what the consumers know", "held", down, consumers{paused: busy.paused},
			[]string{diagnose.CodeConsumerPaused}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := diagnose.Prober{Service: "payment", DB: c.db, Group: "payment-service", Consumers: c.consumers}
			holds, err := p.Holds(context.Background(), c.key)
			if err != nil {
				t.Fatal(err)
			}
			if got := codes(holds); !slices.Equal(got, c.want) {
				t.Fatalf("holds %v, want %v", got, c.want)
			}
			for _, h := range holds {
				if h.Remedy == "" || h.Detail == "" || h.Service != "payment" {
					t.Errorf("hold %+v: want a detail, a remedy and the service", h)
				}
			}
		})
	}
}
