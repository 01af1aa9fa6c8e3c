package service

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/testenv"
)

// TestDiagnosisLive runs the order service against a stand-in payment
// service: an order's diagnosis names the payment service unreachable while
// it refuses, then the key it reports parked, asked with the admin token;
// the stuck list and the CLI show the same.
func TestDiagnosisLive(t *testing.T) {
	testenv.NeedsServers(t, "the order service's diagnosis")
	t.Parallel()
	var up atomic.Bool
	var asked atomic.Value
	payment := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(r.Method + " " + r.URL.Path + " " + r.Header.Get("Authorization"))
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		id := strings.TrimPrefix(r.URL.Path, "/admin/diagnosis/orders/")
		_ = json.NewEncoder(w).Encode(map[string]any{"order_id": id, "payment_status": "", "holds": []map[string]string{{
			"code": "key_parked", "service": "payment", "detail": "parked", "remedy": "payment poison keys replay " + id}}})
	}))
	defer payment.Close()

	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	kc := testenv.Kafka(t)
	topics := testenv.Topics(t, kc, 1, "orders", "payments", "order-poison", "payment-poison")
	cfg := DefaultConfig()
	cfg.HTTPAddr = testenv.FreeAddr(t)
	cfg.AdminToken = "secret"
	cfg.ConsolePaymentURL = payment.URL
	cfg.OrdersTopic, cfg.PaymentsTopic, cfg.PaymentPoisonTopic = topics[0], topics[1], topics[3]
	cfg.Messaging.DB = d.DBConfig()
	cfg.Messaging.Kafka = kc
	cfg.Messaging.PoisonTopic = topics[2]
	cfg.Messaging.ConsumerGroup = testenv.Group(t, kc, "order")
	cfg.Stop.DrainTimeout = 5 * time.Second
	testenv.Background(t, "service.Run", func(ctx context.Context) error {
		return Run(ctx, cfg, slog.New(slog.DiscardHandler))
	})
	base := "http://" + cfg.HTTPAddr
	testenv.WaitReady(t, base)

	resp, err := http.Post(base+"/orders", "application/json", strings.NewReader(`{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`))
	if err != nil {
		t.Fatal(err)
	}
	var order struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&order); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /orders: %s, %v", resp.Status, err)
	}
	resp.Body.Close()

	cause := func() string {
		var out bytes.Buffer
		if err := Diagnose(context.Background(), cfg, []string{order.ID}, &out); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	// Once the order's event left the outbox, the payment service is asked.
	testenv.WaitFor(t, "the payment service named unreachable", 30*time.Second, func() bool {
		return strings.Contains(cause(), "held by:  payment_service_unreachable")
	})
	if got, want := asked.Load(), "GET /admin/diagnosis/orders/"+order.ID+" Bearer secret"; got != want {
		t.Fatalf("the payment service was asked %q, want %q", got, want)
	}
	up.Store(true)
	if got := cause(); !strings.Contains(got, "held by:  key_parked (in the payment service)") ||
		!strings.Contains(got, "resolve:  payment poison keys replay "+order.ID) {
		t.Fatalf("diagnosis:\n%s\nwant the parked key and its replay", got)
	}
	var stuck bytes.Buffer
	if err := Stuck(context.Background(), cfg, []string{"--older-than-seconds", "0"}, &stuck); err != nil ||
		!strings.Contains(stuck.String(), "key_parked: 1 order(s)\n  "+order.ID+" PENDING") {
		t.Fatalf("order stuck: %v\n%s", err, stuck.String())
	}
}
