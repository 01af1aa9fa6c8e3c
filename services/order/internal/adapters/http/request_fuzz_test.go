package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/fuzzseed"
	"github.com/onceflow/onceflow/pkg/problem"
	orderhttp "github.com/onceflow/onceflow/services/order/internal/adapters/http"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// requestSeeds are the API's requests as clients send them, as (method, path,
// raw query, headers, body); headers is one "Name: value" per line.
var requestSeeds = []fuzzseed.Seed{
	{Name: "place", Args: []any{"POST", "/orders", "", "Content-Type: application/json\n",
		[]byte(`{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`)}},
	{Name: "place-idempotent", Args: []any{"POST", "/orders", "",
		"Content-Type: application/json\nIdempotency-Key: \"k-1\"\nX-Correlation-ID: req-1\nX-Request-ID: r-1\n",
		[]byte(`{"customer_id":"c-1","amount_cents":1,"currency":"JPY"}` + "\n")}},
	{Name: "cancel", Args: []any{"POST", "/orders/o-1/cancel", "", "Idempotency-Key: k-2\n", []byte(nil)}},
	{Name: "get", Args: []any{"GET", "/orders/o-1", "", "", []byte(nil)}},
	{Name: "timeline", Args: []any{"GET", "/orders/o-1/timeline", "", "", []byte(nil)}},
	{Name: "list", Args: []any{"GET", "/orders", "customer_id=c-1", "", []byte(nil)}},
	{Name: "health", Args: []any{"GET", "/healthz", "", "", []byte(nil)}},
}

// TestRequestFuzzSeeds keeps testdata/fuzz/FuzzOrderAPI/seed-* equal to
// requestSeeds (ONCEFLOW_FUZZ_SEEDS=write regenerates them).
func TestRequestFuzzSeeds(t *testing.T) {
	fuzzseed.Sync(t, "FuzzOrderAPI", requestSeeds)
}

// correlationOK is the shape of the X-Correlation-ID the server answers with.
var correlationOK = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// FuzzOrderAPI sends the real Echo server (with in-memory fakes of the
// application's ports, as the adapter's unit tests use, one order "o-1"
// stored) any method, path, query, headers and body, through httptest. The
// properties: no panic; never a 5xx (the fakes never fail, so every failure is
// a client mistake); every non-2xx answer is problem+json whose status is the
// HTTP status, with a type and a title; every 2xx answer is JSON; every answer
// carries a well-formed X-Correlation-ID.
func FuzzOrderAPI(f *testing.F) {
	f.Fuzz(func(t *testing.T, method, path, query, headers string, body []byte) {
		repo := &memOrders{orders: map[string]*domain.Order{"o-1": {ID: "o-1", CustomerID: "c-1", AmountCents: 5,
			Currency: "EUR", Status: domain.StatusPending, Version: 1}}}
		api := orderhttp.NewServer(app.New(repo, fixedTimeline{}, slog.New(slog.DiscardHandler)),
			orderhttp.Config{RequestTimeout: time.Minute, Ready: func(context.Context) error { return nil }},
			slog.New(slog.DiscardHandler))
		req := httptest.NewRequest(http.MethodGet, "/", bytes.NewReader(body))
		req.Method = method
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req.URL.Path, req.URL.RawPath, req.URL.RawQuery = path, "", query
		req.RequestURI = ""
		for _, line := range strings.Split(headers, "\n") {
			if name, value, ok := strings.Cut(line, ": "); ok {
				req.Header.Add(name, value)
			}
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)

		if rec.Code >= 500 {
			t.Fatalf("%s %s?%s: %d, a server error for a client's request; body %s", method, path, query, rec.Code, rec.Body)
		}
		if id := rec.Header().Get(orderhttp.HeaderCorrelationID); !correlationOK.MatchString(id) {
			t.Fatalf("X-Correlation-ID %q", id)
		}
		if rec.Code >= 200 && rec.Code < 300 {
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%d with a body that is not JSON: %q", rec.Code, rec.Body)
			}
			return
		}
		if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
			t.Fatalf("%d with Content-Type %q, want %q; body %s", rec.Code, ct, problem.ContentType, rec.Body)
		}
		var p problem.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("%d: the problem body does not decode: %v; body %q", rec.Code, err, rec.Body)
		}
		if p.Status != rec.Code || p.Type == "" || p.Title == "" {
			t.Fatalf("%d: problem %+v (status must match, type and title set)", rec.Code, p)
		}
	})
}
