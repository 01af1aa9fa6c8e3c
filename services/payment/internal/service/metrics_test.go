package service

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
)

// TestMetricsShowThePaymentsLive runs the payment service, delivers one
// OrderPlaced twice (the second is a duplicate the inbox absorbs) and reads
// GET /metrics on its health port: the outbox, consumer and HTTP metrics of
// ADR 0038 are there with live values (the PaymentCompleted forwarded, the
// duplicate absorbed), and Watermill's handler metrics.
func TestMetricsShowThePaymentsLive(t *testing.T) {
	testenv.NeedsServers(t, "the payment service's metrics")
	t.Parallel()
	kafkaCfg := testenv.Kafka(t)
	d := testenv.NewDatabase(t, testenv.PaymentDBAddr)
	db := d.Admin
	topics := testenv.Topics(t, kafkaCfg, 1, "orders", "payments", "payment-poison")
	cfg := DefaultConfig()
	cfg.HTTPAddr = testenv.FreeAddr(t)
	cfg.OrdersTopic, cfg.PaymentsTopic = topics[0], topics[1]
	cfg.Messaging.DB = d.DBConfig() // migrates as the migration user, runs as the service user
	cfg.Messaging.Kafka = kafkaCfg
	cfg.Messaging.PoisonTopic = topics[2]
	cfg.Messaging.ConsumerGroup = testenv.Group(t, kafkaCfg, "payment")
	cfg.MetricsSampleInterval = 100 * time.Millisecond
	cfg.Stop.DrainTimeout = 5 * time.Second
	testenv.Background(t, "service.Run", func(ctx context.Context) error {
		return Run(ctx, cfg, slog.New(slog.DiscardHandler))
	})
	base := "http://" + cfg.HTTPAddr
	testenv.WaitReady(t, base)
	if _, err := db.Exec("INSERT INTO accounts (customer_id, balance_cents, currency) VALUES ('c-1', 10000, 'EUR')"); err != nil {
		t.Fatal(err)
	}
	m, err := events.Encode(events.Event{ID: watermill.NewUUID(), OrderID: "o-metrics", OrderVersion: 1, OccurredAt: time.Now(),
		Payload: events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 250, Currency: "EUR"}}})
	if err != nil {
		t.Fatal(err)
	}
	pub := kafkaCfg.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	if err := pub.Publish(cfg.OrdersTopic, m, m.Copy()); err != nil { // the same message twice
		t.Fatal(err)
	}

	testenv.WaitMetrics(t, base+"/metrics", []testenv.MetricWant{
		{Name: "onceflow_outbox_pending_rows"},
		{Name: "onceflow_outbox_oldest_age_seconds"},
		{Name: "onceflow_outbox_forwarded_total", Min: 1}, // the PaymentCompleted
		{Name: "onceflow_outbox_parked_rows"},
		{Name: "onceflow_consumer_lag_messages", Labels: []string{"topic", cfg.OrdersTopic, "partition", "0", "group", cfg.Messaging.ConsumerGroup}},
		{Name: "onceflow_handler_retries_total"},
		{Name: "onceflow_poison_messages_total"},
		{Name: "onceflow_inbox_duplicates_total", Min: 1},
		{Name: "onceflow_http_requests_total", Labels: []string{"route", "/readyz", "method", "GET", "status", "200"}, Min: 1},
		{Name: "handler_execution_time_seconds_count", Labels: []string{"handler_name", "payment.order-events"}, Min: 1},
	})
}
