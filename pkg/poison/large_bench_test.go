package poison_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/poison/poisonhttp"
	"github.com/onceflow/onceflow/pkg/problem"
)

// BenchmarkAdminCallsOnALargePoisonTopic times each admin call the console
// and the CLI make, through the HTTP endpoints, on a poison topic of 200,000
// records: 1 in 100 has reason code unknown_order, the others invalid_event.
// Every call must answer well under the order service's 5 s request timeout.
// Run it with a few iterations, e.g. -benchtime=5x.
func BenchmarkAdminCallsOnALargePoisonTopic(b *testing.B) {
	const records = 200_000
	kafka := testenv.Kafka(b)
	d := testenv.NewDatabase(b, testenv.OrderDBAddr)
	d.Migrate(b, nil)
	topic := poisonTopic(b, kafka)
	producePoisoned(b, kafka, topic, records, func(i int) string {
		if i%100 == 0 {
			return "unknown_order"
		}
		return "invalid_event"
	})
	tool := poison.New(kafka, topic, d.Open(b, 10))
	b.Cleanup(func() { tool.Close() })
	e := echo.New()
	e.HTTPErrorHandler = problem.Handler(slog.New(slog.DiscardHandler), problem.Config{})
	poisonhttp.Routes(e.Group("/admin/poison"), tool, "secret")

	middle := strconv.Itoa(records / 2)
	calls := []struct{ name, method, path string }{
		{"list first page", http.MethodGet, "/admin/poison"},
		{"get", http.MethodGet, "/admin/poison/" + middle},
		{"replay one", http.MethodPost, "/admin/poison/" + middle + "/replay"},
		{"list by reason", http.MethodGet, "/admin/poison?reason_code=unknown_order"},
		{"list by an absent reason", http.MethodGet, "/admin/poison?reason_code=payment_mismatch"},
		{"replay a page of 50", http.MethodPost, "/admin/poison/replay?limit=50"},
	}
	for _, c := range calls {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(c.method, c.path, nil)
				req.Header.Set("Authorization", "Bearer secret")
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s %s: %d %.300s", c.method, c.path, rec.Code, rec.Body)
				}
				b.ReportMetric(float64(rec.Body.Len()), "resp-bytes")
			}
		})
	}
}
