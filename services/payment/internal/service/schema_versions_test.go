package service

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/servicedb"
	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/pkg/sqldb"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/kafka"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/payment/internal/app"
)

// TestOrderPlacedV2RolledOutTheWrongWayRound is ADR 0036's documented failure
// and its repair, through the payment service's real inbound handler:
//
//  1. a payment service built before order.placed v2 (the real handler behind
//     a decoder that stops at v1, as the previous build's codec did) charges a
//     v1 OrderPlaced and poisons a v2 one with reason code
//     unsupported_version, charging nothing for it;
//  2. the upgraded service (Run, this build) on the same database and consumer
//     group charges v1 and v2 events, and the poisoned v2 only once it is
//     replayed from the poison topic (`payment poison replay`); every charge
//     answers with a payment.completed.
//
// The topics have one partition, so "the upgraded service charged an event
// published after the poisoned one" proves the poisoned one was not simply
// delivered again.
func TestOrderPlacedV2RolledOutTheWrongWayRound(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t, testenv.PaymentDBAddr)
	db := d.Admin
	cfg := testConfig(t, d)
	kafkaCfg := cfg.Messaging.Kafka
	placed := func(order string, schemaVersion int) *message.Message {
		t.Helper()
		m, err := events.Encode(events.Event{ID: watermill.NewUUID(), SchemaVersion: schemaVersion, OrderID: order, OrderVersion: 1,
			OccurredAt: time.Now(), Payload: events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 250, Currency: "EUR"}}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	publish := func(msgs ...*message.Message) {
		t.Helper()
		pub := kafkaCfg.NewPublisher(watermill.NopLogger{})
		defer pub.Close()
		if err := pub.Publish(cfg.OrdersTopic, msgs...); err != nil {
			t.Fatal(err)
		}
	}

	// 1. The v1-only build.
	old := startV1OnlyPayments(t, cfg)
	if _, err := db.Exec("INSERT INTO accounts (customer_id, balance_cents, currency) VALUES ('c-1', 10000, 'EUR')"); err != nil {
		t.Fatal(err)
	}
	v2 := placed("o-v2", 2)
	publish(v2, placed("o-v1", 1))
	waitCharged(t, db, "o-v1")
	poisoned := testenv.ReadTopic(t, kafkaCfg, cfg.Messaging.PoisonTopic, 1, 60*time.Second)
	if len(poisoned) != 1 || poisoned[0].UUID != v2.UUID {
		t.Fatalf("poison topic: %d messages, want the v2 OrderPlaced %s", len(poisoned), v2.UUID)
	}
	if code := poisoned[0].Metadata.Get(failure.MetadataReasonCode); code != events.ReasonUnsupportedVersion {
		t.Fatalf("reason_code = %q, want %q", code, events.ReasonUnsupportedVersion)
	}
	old() // a graceful stop: the poisoned message's offset is committed
	if charged(t, db, "o-v2") {
		t.Fatal("the v1-only build charged the v2 OrderPlaced")
	}

	// 2. The upgraded build.
	runPayments(t, cfg)
	publish(placed("o-v2-direct", 2), placed("o-v1-after", 1))
	waitCharged(t, db, "o-v2-direct")
	waitCharged(t, db, "o-v1-after")
	if charged(t, db, "o-v2") {
		t.Fatal("the upgraded build charged the poisoned v2 OrderPlaced before its replay: it was delivered again, not poisoned")
	}
	tool := poison.New(kafkaCfg, cfg.Messaging.PoisonTopic, db)
	defer tool.Close()
	if _, err := tool.Replay(context.Background(), 0); err != nil {
		t.Fatalf("replay: %v", err)
	}
	waitCharged(t, db, "o-v2")

	got := testenv.ReadTopic(t, kafkaCfg, cfg.PaymentsTopic, 4, 60*time.Second)
	var completed []string
	for _, m := range got {
		e, err := events.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type() == events.TypePaymentCompleted {
			completed = append(completed, e.OrderID)
		}
	}
	sort.Strings(completed)
	if want := "o-v1,o-v1-after,o-v2,o-v2-direct"; strings.Join(completed, ",") != want {
		t.Fatalf("payment.completed for %v, want %s", completed, want)
	}
}

// startV1OnlyPayments runs the payment service's consumer as a build from
// before order.placed v2 would: the real handler, behind a decoder that
// accepts order.placed up to version 1 and refuses newer ones exactly as the
// previous codec did (ErrUnsupportedVersion, reason code unsupported_version).
// It returns a function that stops it gracefully.
func startV1OnlyPayments(t *testing.T, cfg Config) (stop func()) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	m := cfg.Messaging.Defaults()
	db, err := sqldb.OpenAndMigrate(context.Background(), m.DB, logger, servicedb.Migrations(mariadb.Migrations)...)
	if err != nil {
		t.Fatal(err)
	}
	poisonOut := m.Kafka.NewPoisonPublisher(watermill.NopLogger{})
	consumers, err := servicemain.NewConsumers(m, db, poisonOut, nil, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	handle := kafka.OrderEvents(app.New(mariadb.NewPayments(db, outbox.New(), cfg.PaymentsTopic), logger))
	v1Only := events.Decoder{MaxVersions: map[events.Type]int{events.TypeOrderPlaced: 1}}
	consumers.Handle("payment.order-events", cfg.OrdersTopic, func(msg *message.Message) error {
		if _, err := v1Only.Decode(msg); err != nil {
			return failure.PermanentCode(failure.ReasonCode(err), err)
		}
		return handle(msg)
	})
	return testenv.Background(t, "the v1-only consumer", func(ctx context.Context) error {
		return lifecycle.New(cfg.Stop, logger).Run(ctx, lifecycle.Parts{Consumers: consumers, Clients: []io.Closer{poisonOut, db}})
	})
}

// testConfig is the payment service's configuration on d and the test Kafka,
// with topics of one partition and a consumer group of the test's own, one
// quick retry before the poison queue.
func testConfig(t *testing.T, d testenv.Database) Config {
	t.Helper()
	kafkaCfg := testenv.Kafka(t)
	topics := testenv.Topics(t, kafkaCfg, 1, "orders", "payments", "payment-poison")
	cfg := DefaultConfig()
	cfg.OrdersTopic, cfg.PaymentsTopic = topics[0], topics[1]
	cfg.Messaging.DB = d.DBConfig() // migrates as the migration user, runs as the service user
	cfg.Messaging.Kafka = kafkaCfg
	cfg.Messaging.PoisonTopic = topics[2]
	cfg.Messaging.ConsumerGroup = testenv.Group(t, kafkaCfg, "payment")
	cfg.Messaging.Retry = consumer.RetryConfig{MaxRetries: 1, InitialInterval: 10 * time.Millisecond, MaxInterval: 20 * time.Millisecond}
	cfg.Stop.DrainTimeout = 5 * time.Second
	return cfg
}

// runPayments runs the payment service (Run) with cfg on a free port until the
// test ends.
func runPayments(t *testing.T, cfg Config) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr = l.Addr().String()
	l.Close()
	testenv.Background(t, "service.Run", func(ctx context.Context) error {
		return Run(ctx, cfg, slog.New(slog.DiscardHandler))
	})
}

// charged reports whether the payment service charged order.
func charged(t *testing.T, db *sql.DB, order string) bool {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM payments WHERE order_id = ? AND charged_cents > 0", order).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// waitCharged waits until the payment service charged order.
func waitCharged(t *testing.T, db *sql.DB, order string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !charged(t, db, order); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("order %s was not charged within 60 s", order)
		}
	}
}
