package http_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	orderhttp "github.com/onceflow/onceflow/services/order/internal/adapters/http"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// fixedTimeline is an app.Timeline with fixed entries.
type fixedTimeline []app.TimelineEntry

func (f fixedTimeline) Record(context.Context, app.TimelineEntry) error { return nil }
func (f fixedTimeline) ForOrder(context.Context, string) ([]app.TimelineEntry, error) {
	return f, nil
}

// TestTimelineJSON: the application's timeline entries carry no JSON tags; the
// adapter's response type gives them the API's field names, exactly as before
// (empty optional fields left out, the order id not repeated per entry).
func TestTimelineJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	tl := fixedTimeline{
		{OrderID: "o-1", Topic: "orders", Partition: 2, Offset: 7, At: at, EventID: "e1", EventType: "order.placed",
			CorrelationID: "req-1"},
		{OrderID: "o-1", Topic: "payment.poison", Partition: 0, Offset: 3, At: at.Add(time.Second), EventID: "e2",
			EventType: "payment.completed", CausedBy: "e1", CausedByAttempts: 2, ReplayedAt: "2026-11-23T10:00:00Z",
			Poisoned: &app.Poisoned{ReasonCode: "unknown_order", FromTopic: "payments"}},
	}
	repo := &memOrders{orders: map[string]*domain.Order{"o-1": {ID: "o-1", Status: domain.StatusPending, Version: 1}}}
	api := orderhttp.NewServer(app.New(repo, tl, slog.New(slog.DiscardHandler)), orderhttp.Config{RequestTimeout: time.Second,
		Ready: func(context.Context) error { return nil }}, slog.New(slog.DiscardHandler))
	rec := serve(t, api, httptest.NewRequest(http.MethodGet, "/orders/o-1/timeline", nil))
	want := `{"entries":[` +
		`{"topic":"orders","partition":2,"offset":7,"at":"2026-11-23T09:00:00Z","event_id":"e1","type":"order.placed",` +
		`"correlation_id":"req-1","retries":1},` +
		`{"topic":"payment.poison","partition":0,"offset":3,"at":"2026-11-23T09:00:01Z","event_id":"e2",` +
		`"type":"payment.completed","caused_by":"e1","caused_by_attempts":2,"retries":0,` +
		`"poisoned":{"reason_code":"unknown_order","from_topic":"payments"},"replayed_at":"2026-11-23T10:00:00Z"}` +
		`],"order_id":"o-1"}` + "\n"
	if rec.Code != http.StatusOK || rec.Body.String() != want {
		t.Fatalf("GET /orders/o-1/timeline = %d\n%s\nwant\n%s", rec.Code, rec.Body, want)
	}
}
