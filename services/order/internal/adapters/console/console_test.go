package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/services/order/internal/adapters/console"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

const metricsText = `# TYPE onceflow_outbox_pending_rows gauge
onceflow_outbox_pending_rows 7
# TYPE onceflow_outbox_oldest_age_seconds gauge
onceflow_outbox_oldest_age_seconds 3.5
# TYPE onceflow_consumer_lag_messages gauge
onceflow_consumer_lag_messages{topic="payments",partition="1",group="g"} 4
onceflow_consumer_lag_messages{topic="payments",partition="0",group="g"} 2
# TYPE onceflow_handler_retries_total counter
onceflow_handler_retries_total{handler="a"} 5
onceflow_handler_retries_total{handler="b"} 1
# TYPE onceflow_poison_messages_total counter
onceflow_poison_messages_total{reason="malformed"} 2
# TYPE onceflow_saga_outcomes_total counter
onceflow_saga_outcomes_total{outcome="confirmed"} 9
onceflow_saga_outcomes_total{outcome="cancelled_insufficient_funds"} 1
# TYPE onceflow_http_requests_total counter
onceflow_http_requests_total{route="/orders",method="POST",status="201"} 10
`

// fakeStore is the order database as the console queries it; outbox counts the
// OutboxBacklog calls.
type fakeStore struct {
	orders []*domain.Order
	since  int64
	outbox int
	err    error
}

func (f *fakeStore) RecentOrders(context.Context, int) ([]*domain.Order, error) {
	return f.orders, f.err
}
func (f *fakeStore) OrdersSince(context.Context, time.Time) (int64, error) { return f.since, f.err }
func (f *fakeStore) OutboxBacklog(context.Context) (int64, float64, error) {
	f.outbox++
	return 12, 30, f.err
}

func serve(t *testing.T, status int, body string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// downURL is an address nothing listens on any more.
func downURL(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	s.Close()
	return s.URL
}

func TestScraperSnapshot(t *testing.T) {
	t.Parallel()
	f := func(v *float64) float64 {
		if v == nil {
			return -1
		}
		return *v
	}
	tests := []struct {
		name       string
		order, pay func(t *testing.T) string
		store      *fakeStore
		check      func(t *testing.T, s console.Snapshot, st *fakeStore)
	}{{
		name:  "both services' metrics",
		order: func(t *testing.T) string { return serve(t, 200, metricsText) },
		pay:   func(t *testing.T) string { return serve(t, 200, metricsText) },
		store: &fakeStore{orders: []*domain.Order{{ID: "o-1", Status: domain.StatusConfirmed}}, since: 25},
		check: func(t *testing.T, s console.Snapshot, st *fakeStore) {
			for _, v := range []console.ServiceView{s.Order, s.Payment} {
				if !v.Up || !v.Metrics || f(v.OutboxPending) != 7 || f(v.OutboxOldest) != 3.5 || v.OutboxSource != "metrics" ||
					f(v.LagTotal) != 6 || len(v.Lag) != 2 || v.Lag[0].Partition != "0" || f(v.Retries) != 6 ||
					v.Poison["malformed"] != 2 || v.Outcomes["confirmed"] != 9 || f(v.HTTPRequests) != 10 {
					t.Fatalf("view = %+v", v)
				}
			}
			if st.outbox != 0 {
				t.Fatalf("the outbox was counted in the database although the metrics had it")
			}
			if f(s.OrdersPerSecond) != 2.5 || len(s.RecentOrders) != 1 || s.RecentOrders[0].Status != "CONFIRMED" || len(s.Errors) != 0 {
				t.Fatalf("snapshot = %+v", s)
			}
		},
	}, {
		name:  "payment service down: shown down, the rest intact",
		order: func(t *testing.T) string { return serve(t, 200, metricsText) },
		pay:   downURL,
		store: &fakeStore{},
		check: func(t *testing.T, s console.Snapshot, _ *fakeStore) {
			if s.Payment.Up || s.Payment.Error == "" || s.Payment.OutboxPending != nil || !s.Order.Up || f(s.Order.OutboxPending) != 7 {
				t.Fatalf("order %+v, payment %+v", s.Order, s.Payment)
			}
			if len(s.Errors) != 1 || !strings.HasPrefix(s.Errors[0], "payment /metrics") {
				t.Fatalf("errors = %q", s.Errors)
			}
		},
	}, {
		name:  "no /metrics yet: up, order outbox from the database",
		order: func(t *testing.T) string { return serve(t, 404, "not found") },
		pay:   func(t *testing.T) string { return serve(t, 404, "not found") },
		store: &fakeStore{},
		check: func(t *testing.T, s console.Snapshot, st *fakeStore) {
			if !s.Order.Up || s.Order.Metrics || s.Order.OutboxSource != "db" || f(s.Order.OutboxPending) != 12 || f(s.Order.OutboxOldest) != 30 || st.outbox != 1 {
				t.Fatalf("order = %+v", s.Order)
			}
			if !s.Payment.Up || s.Payment.OutboxPending != nil {
				t.Fatalf("payment = %+v", s.Payment)
			}
		},
	}, {
		name:  "database down: its figures absent and named",
		order: func(t *testing.T) string { return serve(t, 200, "garbage{") },
		pay:   func(t *testing.T) string { return serve(t, 500, "") },
		store: &fakeStore{err: errors.New("db down")},
		check: func(t *testing.T, s console.Snapshot, _ *fakeStore) {
			if s.OrdersPerSecond != nil || s.Order.OutboxPending != nil || len(s.RecentOrders) != 0 || s.RecentOrders == nil {
				t.Fatalf("snapshot = %+v", s)
			}
			if s.Order.Up || s.Payment.Up || len(s.Errors) != 5 {
				t.Fatalf("errors = %q", s.Errors)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc := &console.Scraper{OrderMetricsURL: tt.order(t) + "/metrics", PaymentMetricsURL: tt.pay(t) + "/metrics", Store: tt.store}
			tt.check(t, sc.Snapshot(context.Background()), tt.store)
		})
	}
}

// The snapshot is reused within MinInterval: many pages cost one scrape.
func TestScraperReusesSnapshot(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	st := &fakeStore{}
	sc := &console.Scraper{Store: st, MinInterval: time.Second, Now: func() time.Time { return now }}
	sc.Snapshot(context.Background())
	now = now.Add(999 * time.Millisecond)
	sc.Snapshot(context.Background())
	if st.outbox != 1 {
		t.Fatalf("database asked %d times within MinInterval, want 1", st.outbox)
	}
	now = now.Add(time.Millisecond)
	sc.Snapshot(context.Background())
	if st.outbox != 2 {
		t.Fatalf("database asked %d times after MinInterval, want 2", st.outbox)
	}
}

// fixedSource returns the same snapshot each time.
type fixedSource struct{ s console.Snapshot }

func (f fixedSource) Snapshot(context.Context) console.Snapshot { return f.s }

func newConsole(t *testing.T, paymentURL string) *httptest.Server {
	t.Helper()
	e := echo.New()
	rate := 1.5
	err := console.Routes(e, console.Config{
		Source:          fixedSource{console.Snapshot{OrdersPerSecond: &rate, RecentOrders: []console.OrderView{{ID: "o-1", Status: "PENDING"}}}},
		PaymentAdminURL: paymentURL,
		Every:           10 * time.Millisecond,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(e)
	t.Cleanup(s.Close)
	return s
}

func TestConsolePageAndAssets(t *testing.T) {
	t.Parallel()
	s := newConsole(t, "")
	for path, want := range map[string]string{
		"/console":                    `src="/console/static/console.js"`,
		"/console/static/console.js":  `new EventSource("/console/events")`,
		"/console/static/console.css": `.card`,
	} {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body without %q", path, resp.StatusCode, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
}

// The events stream announces its retry and sends snapshots until the request ends.
func TestConsoleEvents(t *testing.T) {
	t.Parallel()
	s := newConsole(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/console/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var retry bool
	var snaps []console.Snapshot
	for len(snaps) < 2 && sc.Scan() {
		line := sc.Text()
		retry = retry || line == "retry: 10"
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var snap console.Snapshot
			if err := json.Unmarshal([]byte(data), &snap); err != nil {
				t.Fatalf("event data %q: %v", data, err)
			}
			snaps = append(snaps, snap)
		}
	}
	if !retry || len(snaps) != 2 || snaps[1].OrdersPerSecond == nil || *snaps[1].OrdersPerSecond != 1.5 || snaps[1].RecentOrders[0].ID != "o-1" {
		t.Fatalf("retry announced %v, snapshots %+v (%v)", retry, snaps, sc.Err())
	}
}

// The proxy sends the request, with its token and nothing else of its
// headers, to the payment service's admin endpoints; a payment service that
// does not answer is a 502.
func TestConsolePaymentProxy(t *testing.T) {
	t.Parallel()
	type seen struct{ method, uri, auth, cookie string }
	got := make(chan seen, 1)
	payment := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), r.Header.Get("Cookie")}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer payment.Close()
	s := newConsole(t, payment.URL)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/console/payment/admin/poison/purge?up_to=4", nil)
	req.Header.Set("Authorization", "Bearer secret")
	req.Header.Set("Cookie", "session=x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := seen{"POST", "/admin/poison/purge?up_to=4", "Bearer secret", ""}
	if g := <-got; resp.StatusCode != http.StatusAccepted || g != want {
		t.Fatalf("status %d, payment saw %+v, want %+v", resp.StatusCode, g, want)
	}

	down := newConsole(t, downURL(t))
	resp, err = http.Get(down.URL + "/console/payment/admin/poison")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("payment down: status %d, want 502", resp.StatusCode)
	}
}
