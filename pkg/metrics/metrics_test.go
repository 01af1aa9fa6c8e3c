package metrics

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/onceflow/onceflow/internal/testenv"
)

func TestHooksFeedTheCounters(t *testing.T) {
	m := New()
	h := m.Hooks()
	m.Forwarded(3)
	m.Forwarded(1)
	h.Retried()
	h.Poisoned("invalid_event")
	h.Poisoned("invalid_event")
	h.Duplicate()
	m.Skipped()
	m.SagaOutcome("confirmed")
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"forwarded", testutil.ToFloat64(m.forwarded), 4},
		{"retries", testutil.ToFloat64(m.retries), 1},
		{"poisoned{invalid_event}", testutil.ToFloat64(m.poisoned.WithLabelValues("invalid_event")), 2},
		{"duplicates", testutil.ToFloat64(m.duplicates), 1},
		{"skipped", testutil.ToFloat64(m.skipped), 1},
		{"saga{confirmed}", testutil.ToFloat64(m.sagaOutcomes.WithLabelValues("confirmed")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// Every metric name of ADR 0038 is exposed from the start (labelled ones with
// their declared label values at zero; the lag and HTTP series appear with
// their first sample and request), so alerts and dashboards never see "no data".
func TestEveryNameIsExposedFromTheStart(t *testing.T) {
	m := New("confirmed", "refunded")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	s, err := testenv.ParseMetrics(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"onceflow_outbox_pending_rows", "onceflow_outbox_oldest_age_seconds",
		"onceflow_outbox_forwarded_total", "onceflow_outbox_parked_rows", "onceflow_handler_retries_total",
		"onceflow_poison_messages_total", "onceflow_inbox_duplicates_total", "onceflow_saga_outcomes_total",
		"onceflow_skipped_messages_total", "onceflow_metrics_sample_errors_total", "go_goroutines"} {
		if _, ok := s.Sum(name); !ok {
			t.Errorf("%s is not exposed", name)
		}
	}
	if _, ok := s.Sum("onceflow_saga_outcomes_total", "outcome", "refunded"); !ok {
		t.Error(`onceflow_saga_outcomes_total{outcome="refunded"} is not declared at zero`)
	}
}

// The HTTP metrics use the route template, never the raw path, and count the
// status the error handler sent.
func TestHTTPMetricsByRouteTemplate(t *testing.T) {
	m := New()
	e := echo.New()
	e.GET("/orders/:id", func(c echo.Context) error {
		if c.Param("id") == "bad" {
			return echo.NewHTTPError(http.StatusUnprocessableEntity, "bad id")
		}
		if c.Param("id") == "boom" {
			return errors.New("boom")
		}
		return c.String(http.StatusOK, "ok")
	})
	m.Register(e)
	for _, path := range []string{"/orders/a", "/orders/b", "/orders/bad", "/orders/boom", "/no/such/path/1", "/no/such/path/2", "/metrics"} {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("BREW", "/orders/a", nil))
	for _, c := range []struct {
		route, method, status string
		want                  float64
	}{
		{"/orders/:id", "GET", "200", 2},
		{"/orders/:id", "GET", "422", 1},
		{"/orders/:id", "GET", "500", 1},
		{unmatchedRoute, "GET", "404", 2},
		{"/metrics", "GET", "200", 1},
	} {
		if got := testutil.ToFloat64(m.httpRequests.WithLabelValues(c.route, c.method, c.status)); got != c.want {
			t.Errorf("requests{route=%q,method=%q,status=%q} = %v, want %v", c.route, c.method, c.status, got, c.want)
		}
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, raw := range []string{"/orders/a", "/no/such/path", "BREW"} {
		if strings.Contains(rec.Body.String(), raw) {
			t.Errorf("the exposition contains %q: a raw path or method became a label value", raw)
		}
	}
	if got := testutil.CollectAndCount(m.httpDuration); got == 0 {
		t.Error("no request duration was observed")
	}
}

// A failing sample keeps the gauges' last values, counts the failure, and logs
// once when the source starts failing (not at every interval).
func TestSamplerKeepsLastValuesOnFailure(t *testing.T) {
	db, err := sql.Open("mysql", "user:pw@tcp(127.0.0.1:1)/none")
	if err != nil {
		t.Fatal(err)
	}
	db.Close() // every query now fails at once: "sql: database is closed"
	m := New()
	m.outboxPending.Set(7)
	var logs strings.Builder
	s := m.NewSampler(db, nil, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	for range 3 {
		if err := s.Sample(context.Background()); err == nil {
			t.Fatal("a sample of a closed database succeeded")
		}
	}
	if got := testutil.ToFloat64(m.outboxPending); got != 7 {
		t.Errorf("pending rows = %v after failed samples, want the last value 7", got)
	}
	if got := testutil.ToFloat64(m.sampleErrors.WithLabelValues("outbox")); got != 3 {
		t.Errorf("sample errors{outbox} = %v, want 3", got)
	}
	if n := strings.Count(logs.String(), "sampling failed"); n != 1 {
		t.Errorf("logged the failure %d times, want once:\n%s", n, logs.String())
	}
}
