package http_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/outbox/parking"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/internal/testenv"
	orderhttp "github.com/onceflow/onceflow/services/order/internal/adapters/http"
	"github.com/onceflow/onceflow/services/order/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// The symptom of issue 11 §1: a POST /orders with a 1,050,000-byte X-Request-ID
// made an event Kafka could never take, and every later order stalled behind
// it. Now the id is replaced at the edge: the order gets a bounded correlation
// id, and its event and the following orders' events all reach Kafka.
func TestHugeRequestIDDoesNotStopThePipeline(t *testing.T) {
	t.Parallel()
	kcfg := testenv.Kafka(t)
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, mariadb.Migrations)
	db := d.Open(t, 100) // as the service user
	topic := testenv.Topics(t, kcfg, 3, "orders")[0]
	ob := outbox.New()
	svc := app.New(mariadb.NewOrders(db, ob, topic), mariadb.NewTimeline(db), slog.New(slog.DiscardHandler))
	api := orderhttp.NewServer(svc, orderhttp.Config{RequestTimeout: 10 * time.Second, Ready: db.PingContext}, slog.New(slog.DiscardHandler))

	post := func(requestID string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(`{"customer_id":"c-1","amount_cents":100,"currency":"EUR"}`))
		if requestID != "" {
			req.Header.Set(echo.HeaderXRequestID, requestID)
		}
		return serve(t, api, req) // straight to Echo: no http.Server header limit in the way
	}
	huge := strings.Repeat("r", 1_050_000)
	first := post(huge)
	if first.Code != http.StatusCreated {
		t.Fatalf("POST with a huge X-Request-ID: %d %s", first.Code, first.Body.String())
	}
	corr := first.Header().Get(orderhttp.HeaderCorrelationID)
	if corr == "" || len(corr) > orderhttp.MaxRequestIDLength || corr == huge {
		t.Fatalf("correlation id has %d bytes, want a generated one of at most %d", len(corr), orderhttp.MaxRequestIDLength)
	}
	for _, bad := range []string{"has space", "new\x7fline", strings.Repeat("a", 129)} {
		if got := post(bad).Header().Get(echo.HeaderXRequestID); got == bad {
			t.Errorf("X-Request-ID %q was kept", bad)
		}
	}
	if got := post("trace-42").Header().Get(orderhttp.HeaderCorrelationID); got != "trace-42" {
		t.Errorf("a valid X-Request-ID became correlation id %q, want it kept", got)
	}

	parked, err := parking.New(parking.Config{DB: db, Outbox: ob})
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := outbox.NewForwarder(outbox.Config{PollInterval: 10 * time.Millisecond, DB: db,
		Publisher: kcfg.NewPublisher(watermill.NopLogger{}), Outbox: ob, Parking: parked.Publisher})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = fwd.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	const orders = 5 // the huge one, three with bad ids, one with a good id
	msgs := testenv.ReadTopic(t, kcfg, topic, orders, 60*time.Second)
	if len(msgs) != orders {
		t.Fatalf("%d of %d events reached Kafka", len(msgs), orders)
	}
	for _, m := range msgs {
		if c := middleware.MessageCorrelationID(m); len(c) > orderhttp.MaxRequestIDLength {
			t.Errorf("event %s has a %d-byte correlation id", m.UUID, len(c))
		}
	}
	if rows, err := parked.List(context.Background()); err != nil || len(rows) != 0 {
		t.Fatalf("parked %v (err %v), want none", rows, err)
	}
}
