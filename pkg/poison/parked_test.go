package poison_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/apidoc/apidoctest"
	"github.com/onceflow/onceflow/pkg/httpserver"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox/parking"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/poison/poisonhttp"
	"github.com/onceflow/onceflow/pkg/problem"
)

// The admin endpoints list parked rows, refuse to replay a row that waits behind
// another (409), and discarding the head releases the next row into the outbox.
func TestParkedRowEndpoints(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	db := d.Open(t, 100) // as the service user
	for _, id := range []string{"m-1", "m-2"} {
		if _, err := db.Exec(`INSERT INTO outbox_parked (message_id, partition_key, topic, payload, metadata, reason, kafka_error)
			VALUES (?, 'order-1', 'orders', '{}', '{"partition_key":"order-1","event_type":"order.placed"}', 'message_too_large', 'too large')`, id); err != nil {
			t.Fatal(err)
		}
	}
	tool := poison.New(kafka.Config{}, "order.poison", db)
	defer tool.Close()
	call := adminClient(t, tool)
	var list struct{ Parked []parking.Row }
	if code := call(http.MethodGet, "/admin/poison/parked", &list); code != http.StatusOK || len(list.Parked) != 2 || !list.Parked[0].Head || list.Parked[1].Head {
		t.Fatalf("list: %d %+v", code, list.Parked)
	}
	first, second := strconv.FormatInt(list.Parked[0].ID, 10), strconv.FormatInt(list.Parked[1].ID, 10)
	if code := call(http.MethodPost, "/admin/poison/parked/"+second+"/replay", nil); code != http.StatusConflict {
		t.Fatalf("replaying the row behind the head: %d, want 409", code)
	}
	if code := call(http.MethodPost, "/admin/poison/parked/"+first+"/discard", nil); code != http.StatusOK {
		t.Fatalf("discarding the head: %d", code)
	}
	if code := call(http.MethodGet, "/admin/poison/parked", &list); code != http.StatusOK || len(list.Parked) != 1 || !list.Parked[0].Released {
		t.Fatalf("after discard: %d %+v, want the second row released", code, list.Parked)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM watermill_outbox").Scan(&n); err != nil || n != 1 {
		t.Fatalf("outbox has %d rows (err %v), want the released one", n, err)
	}
	if code := call(http.MethodGet, "/admin/poison/parked/999999", nil); code != http.StatusNotFound {
		t.Fatalf("unknown id: %d, want 404", code)
	}
}

// adminDocument is the admin endpoints' OpenAPI fragment in a document of its
// own, with the problem schema and the guard's answers the services' documents
// give it.
var adminDocument = apidoctest.Once([]byte("openapi: 3.1.0\ninfo: {title: poison admin, version: \"1\"}\npaths: {}\n"),
	problem.OpenAPI, httpserver.OpenAPI, poisonhttp.OpenAPI)

// adminClient returns a caller of the poison admin endpoints of tool (token
// "secret"), with the services' problem+json error handler: it sends method to
// path, fails the test if the answer breaks the endpoints' OpenAPI fragment,
// decodes a 2xx body into out (if not nil) and returns the status
// code.
func adminClient(t *testing.T, tool *poison.Tool) func(method, path string, out any) int {
	t.Helper()
	return callerOf(t, adminAPI(tool, nil))
}

// adminAPI serves the poison admin endpoints of tool (token "secret"), with
// the dry runs if dryRun is not nil, and the services' problem+json error
// handler.
func adminAPI(tool *poison.Tool, dryRun *poison.DryRunConfig) *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = problem.Handler(slog.New(slog.DiscardHandler), problem.Config{})
	g := e.Group("/admin/poison")
	poisonhttp.Routes(g, tool, "secret")
	if dryRun != nil {
		poisonhttp.DryRunRoute(g, tool, "secret", *dryRun)
	}
	return e
}

// callerOf returns adminClient's caller of the endpoints e serves.
func callerOf(t *testing.T, e *echo.Echo) func(method, path string, out any) int {
	t.Helper()
	return func(method, path string, out any) int {
		t.Helper()
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer secret")
		rec := adminDocument(t).Serve(t, e, req)
		if out != nil && rec.Code < 300 {
			if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, rec.Body)
			}
		}
		return rec.Code
	}
}
