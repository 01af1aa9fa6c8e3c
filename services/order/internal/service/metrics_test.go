package service

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/events"
)

// TestMetricsShowTheSagaLive runs the order service, places an order, answers
// it with a PaymentCompleted delivered twice (the second is a duplicate the
// inbox absorbs) and sends a report for an order that does not exist
// (poisoned). GET /metrics must then show every onceflow_* metric of ADR
// 0038 with a live value, and Watermill's own handler and publisher metrics.
func TestMetricsShowTheSagaLive(t *testing.T) {
	testenv.NeedsServers(t, "the order service's metrics")
	t.Parallel()
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	kc := testenv.Kafka(t)
	topics := testenv.Topics(t, kc, 1, "orders", "payments", "order-poison", "payment-poison")
	cfg := DefaultConfig()
	cfg.HTTPAddr = testenv.FreeAddr(t)
	cfg.OrdersTopic, cfg.PaymentsTopic, cfg.PaymentPoisonTopic = topics[0], topics[1], topics[3]
	cfg.Messaging.DB = d.DBConfig() // migrates as the migration user, runs as the service user
	cfg.Messaging.Kafka = kc
	cfg.Messaging.PoisonTopic = topics[2]
	cfg.Messaging.ConsumerGroup = testenv.Group(t, kc, "order")
	cfg.Messaging.Retry = consumer.RetryConfig{MaxRetries: 1, InitialInterval: 10 * time.Millisecond, MaxInterval: 20 * time.Millisecond}
	cfg.MetricsSampleInterval = 100 * time.Millisecond
	cfg.Stop.DrainTimeout = 5 * time.Second
	testenv.Background(t, "service.Run", func(ctx context.Context) error {
		return Run(ctx, cfg, slog.New(slog.DiscardHandler))
	})
	base := "http://" + cfg.HTTPAddr
	testenv.WaitReady(t, base)

	resp, err := http.Post(base+"/orders", "application/json",
		strings.NewReader(`{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`))
	if err != nil {
		t.Fatal(err)
	}
	var order struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&order); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /orders: %s, %v", resp.Status, err)
	}
	resp.Body.Close()

	paid := func(orderID string) {
		m, err := events.Encode(events.Event{ID: watermill.NewUUID(), OrderID: orderID, OrderVersion: 1, OccurredAt: time.Now(),
			Payload: events.PaymentCompleted{CustomerID: "c-1", AmountCents: 1250, Currency: "EUR"}})
		if err != nil {
			t.Fatal(err)
		}
		pub := kc.NewPublisher(watermill.NopLogger{})
		defer pub.Close()
		if err := pub.Publish(cfg.PaymentsTopic, m, m.Copy()); err != nil { // the same message twice
			t.Fatal(err)
		}
	}
	paid(order.ID)
	paid(watermill.NewUUID()) // an order this service does not have: poisoned (unknown_order)

	s := testenv.WaitMetrics(t, base+"/metrics", []testenv.MetricWant{
		{Name: "onceflow_outbox_pending_rows"},
		{Name: "onceflow_outbox_oldest_age_seconds"},
		{Name: "onceflow_outbox_forwarded_total", Min: 1}, // the OrderPlaced
		{Name: "onceflow_outbox_parked_rows"},
		{Name: "onceflow_consumer_lag_messages", Labels: []string{"topic", cfg.PaymentsTopic, "partition", "0", "group", cfg.Messaging.ConsumerGroup}},
		{Name: "onceflow_handler_retries_total"}, // exact counts: pkg/consumer's TestConsumerHooksReportWhatHappens
		{Name: "onceflow_poison_messages_total", Labels: []string{"reason", "unknown_order"}, Min: 1},
		{Name: "onceflow_inbox_duplicates_total", Min: 1},
		{Name: "onceflow_saga_outcomes_total", Labels: []string{"outcome", "confirmed"}, Min: 1},
		{Name: "onceflow_orders_oldest_not_done_age_seconds"},
		{Name: "onceflow_http_requests_total", Labels: []string{"route", "/orders", "method", "POST", "status", "201"}, Min: 1},
		{Name: "onceflow_http_request_duration_seconds_count", Labels: []string{"route", "/orders", "method", "POST"}, Min: 1},
		{Name: "handler_execution_time_seconds_count", Labels: []string{"handler_name", "order.payment-events"}, Min: 1},
		{Name: "publish_time_seconds_count", Labels: []string{"success", "true"}, Min: 1},
	})
	for series := range s {
		if strings.Contains(series, order.ID) {
			t.Errorf("series %s carries an order id: unbounded cardinality", series)
		}
	}
}
