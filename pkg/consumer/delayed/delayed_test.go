package delayed_test

import (
	"context"
	"database/sql"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/consumertest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/consumer/delayed"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

func TestConfig(t *testing.T) {
	t.Parallel()
	if err := (delayed.Config{}).Defaults().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if err := (delayed.Config{PollInterval: -1}).Validate(); err == nil {
		t.Fatal("a negative poll interval is valid; want an error")
	}
}

// TestSlowDeliveryIsHandedOutOnce (issue 24, item 1): a message on a
// consumer's delayed path whose handling takes longer than watermill-sql's
// default ack deadline (30 s; one delivery through the stack may take
// minutes) is handed to the consumer once: the polling transaction holds the
// row until the delivery ends, instead of handing it out again while the
// first delivery still runs. About 40 s: nothing shorter than that deadline
// shows it.
func TestSlowDeliveryIsHandedOutOnce(t *testing.T) {
	testenv.NeedsServers(t, "the delayed path on MariaDB")
	t.Parallel()
	const slow = 35 * time.Second
	msg := consumertest.MsgWithID(watermill.NewUUID())
	var deliveries, runs atomic.Int64
	countDeliveries := func(h message.HandlerFunc) message.HandlerFunc {
		return func(m *message.Message) ([]*message.Message, error) {
			if m.UUID == msg.UUID && message.HandlerNameFromCtx(m.Context()) == consumertest.Handler+delayed.HandlerSuffix {
				deliveries.Add(1)
			}
			return h(m)
		}
	}
	r := consumertest.New(t, func(c *consumer.Config) {
		c.HandlerTimeout = -1 // the handler runs as long as it takes
		c.Delayed.PollInterval = 50 * time.Millisecond
		c.OnRouter = func(router *message.Router) { router.AddMiddleware(countDeliveries) }
	}, func(r *consumertest.Rig) message.NoPublishHandlerFunc {
		return func(m *message.Message) error {
			if m.UUID == msg.UUID {
				runs.Add(1)
				time.Sleep(slow)
			}
			return r.Effect(m)
		}
	})
	if err := sqldb.InTx(context.Background(), r.DB, func(ctx context.Context, tx *sql.Tx) error {
		return delayed.Redeliver(ctx, tx, r.Group, consumertest.Handler, r.Topic, msg)
	}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the slow delivery's effect", slow+30*time.Second, func() bool { return r.Effects(t, msg.UUID) > 0 })
	testenv.WaitFor(t, "the row deleted", 30*time.Second, func() bool {
		var n int
		if err := r.DB.QueryRow("SELECT COUNT(*) FROM "+delayed.Table+" WHERE uuid = ?", msg.UUID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	if d, n := deliveries.Load(), runs.Load(); d != 1 || n != 1 {
		t.Fatalf("the row was handed out %d times and handled %d times, want once each", d, n)
	}
}
