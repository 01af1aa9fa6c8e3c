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
	"github.com/onceflow/onceflow/pkg/consumer/stop"
	"github.com/onceflow/onceflow/pkg/diagnose"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

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
	} {
		if _, err := d.Admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	stopped := &stop.StoppedError{Consumer: "payment.order-events", MessageID: "m-9", Key: "x", ReasonCode: "handler_failed", Since: time.Now()}
	health := func() error { return errors.Join(errors.New("another strategy's failure"), stopped) }
	p := diagnose.Prober{Service: "payment", DB: d.Open(t, 2), Group: "payment-service"}

	cases := []struct {
		name   string
		key    string
		health func() error
		want   []string
	}{
		{"every hold of the key, in path order", "held", health,
			[]string{diagnose.CodeConsumerStopped, diagnose.CodeKeyParked, diagnose.CodeOutboxParked, diagnose.CodeOutboxBacklog}},
		{"another group's parked key is not ours", "other", nil, []string{diagnose.CodeOutboxBacklog}},
		{"nothing", "free", nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p.Health = c.health
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
