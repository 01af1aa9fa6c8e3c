package http_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/problem"
	orderhttp "github.com/onceflow/onceflow/services/order/internal/adapters/http"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// keyedAPI is an API on an in-memory repository that understands idempotency keys.
func keyedAPI(repo *memOrders) http.Handler {
	svc := app.New(repo, nil, slog.New(slog.DiscardHandler))
	return orderhttp.NewServer(svc, orderhttp.Config{RequestTimeout: time.Second,
		Ready: func(context.Context) error { return nil }}, slog.New(slog.DiscardHandler))
}

func send(t *testing.T, api http.Handler, method, path, body string, keys ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for _, k := range keys {
		req.Header.Add(orderhttp.HeaderIdempotencyKey, k)
	}
	return serve(t, api, req)
}

// wantProblem checks that rec is a problem+json answer of the given status and type.
func wantProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, slug string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("Content-Type = %q, want %q", ct, problem.ContentType)
	}
	var p problem.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(p.Type, "#"+slug) || p.Status != status || p.Detail == "" {
		t.Fatalf("problem = %+v, want type #%s and status %d with a detail", p, slug, status)
	}
}

const orderBody = `{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`

func TestIdempotencyKeyHeaderValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		method     string
		path       string
		keys       []string
		wantStatus int
		wantSlug   string
	}{
		{"no key works as before", "POST", "/orders", nil, 201, ""},
		{"uuid key", "POST", "/orders", []string{"8e03978e-40d5-43e8-bc93-6894a57f9324"}, 201, ""},
		{"quoted key (structured field string)", "POST", "/orders", []string{`"8e03978e-40d5-43e8-bc93-6894a57f9324"`}, 201, ""},
		{"longest key", "POST", "/orders", []string{strings.Repeat("k", app.MaxKeyLength)}, 201, ""},
		{"empty key", "POST", "/orders", []string{""}, 400, "invalid-idempotency-key"},
		{"too long", "POST", "/orders", []string{strings.Repeat("k", app.MaxKeyLength+1)}, 400, "invalid-idempotency-key"},
		{"space inside", "POST", "/orders", []string{"a b"}, 400, "invalid-idempotency-key"},
		{"non-ascii", "POST", "/orders", []string{"clé"}, 400, "invalid-idempotency-key"},
		{"two header fields", "POST", "/orders", []string{"a", "b"}, 400, "invalid-idempotency-key"},
		{"bad key on cancel", "POST", "/orders/o-1/cancel", []string{"{}"}, 400, "invalid-idempotency-key"},
		{"good key on cancel", "POST", "/orders/o-1/cancel", []string{"k-1"}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := &memOrders{orders: map[string]*domain.Order{"o-1": {ID: "o-1", CustomerID: "c-1", AmountCents: 5,
				Currency: "EUR", Status: domain.StatusPending, Version: 1}}}
			body := orderBody
			if tt.path != "/orders" {
				body = ""
			}
			rec := send(t, keyedAPI(repo), tt.method, tt.path, body, tt.keys...)
			if tt.wantSlug != "" {
				wantProblem(t, rec, tt.wantStatus, tt.wantSlug)
				if len(repo.keys) != 0 || len(repo.orders) != 1 {
					t.Fatalf("a refused key stored something: %d keys, %d orders", len(repo.keys), len(repo.orders))
				}
				return
			}
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if want := len(tt.keys); len(repo.keys) != want {
				t.Fatalf("%d keys stored, want %d", len(repo.keys), want)
			}
		})
	}
}

func TestIdempotentReplay(t *testing.T) {
	t.Parallel()
	repo := &memOrders{orders: map[string]*domain.Order{}}
	api := keyedAPI(repo)

	first := send(t, api, "POST", "/orders", orderBody, "k-1")
	if first.Code != 201 || first.Header().Get(orderhttp.HeaderIdempotentReplayed) != "" {
		t.Fatalf("first: %d %v %s", first.Code, first.Header(), first.Body)
	}
	// The same request, formatted differently: the same canonical body.
	again := send(t, api, "POST", "/orders", "{ \"currency\":\"EUR\", \"amount_cents\":1250,\n \"customer_id\":\"c-1\" }", "k-1")
	if again.Code != 201 || again.Body.String() != first.Body.String() ||
		again.Header().Get(orderhttp.HeaderIdempotentReplayed) != "true" ||
		again.Header().Get("Location") != first.Header().Get("Location") {
		t.Fatalf("replay: %d %v %s, want 201 with the first body %s and Idempotent-Replayed: true",
			again.Code, again.Header(), again.Body, first.Body)
	}
	if len(repo.orders) != 1 {
		t.Fatalf("%d orders after a replay, want 1", len(repo.orders))
	}

	// The same key for another body, and for another operation's path in the same scope.
	wantProblem(t, send(t, api, "POST", "/orders", `{"customer_id":"c-1","amount_cents":1251,"currency":"EUR"}`, "k-1"),
		422, "idempotency-key-reused")
	var o struct{ ID string }
	_ = json.Unmarshal(first.Body.Bytes(), &o)
	cancel := send(t, api, "POST", "/orders/"+o.ID+"/cancel", "", "c-1")
	replayedCancel := send(t, api, "POST", "/orders/"+o.ID+"/cancel", "", "c-1")
	if cancel.Code != 200 || replayedCancel.Code != 200 || replayedCancel.Body.String() != cancel.Body.String() ||
		replayedCancel.Header().Get(orderhttp.HeaderIdempotentReplayed) != "true" {
		t.Fatalf("cancel replay: %d %s / %d %v %s", cancel.Code, cancel.Body, replayedCancel.Code, replayedCancel.Header(), replayedCancel.Body)
	}
	repo.orders["o-2"] = &domain.Order{ID: "o-2", CustomerID: "c-1", AmountCents: 5, Currency: "EUR", Status: domain.StatusPending, Version: 1}
	wantProblem(t, send(t, api, "POST", "/orders/o-2/cancel", "", "c-1"), 422, "idempotency-key-reused")
	if repo.orders["o-2"].Status != domain.StatusPending {
		t.Fatal("a reused key cancelled another order")
	}
	// Keys are scoped by route: k-1 of POST /orders is free for a cancellation.
	if rec := send(t, api, "POST", "/orders/o-2/cancel", "", "k-1"); rec.Code != 200 {
		t.Fatalf("k-1 on a cancellation: %d %s, want 200", rec.Code, rec.Body)
	}
}

func TestIdempotencyKeyInFlight(t *testing.T) {
	t.Parallel()
	repo := &memOrders{orders: map[string]*domain.Order{}, inFlight: map[string]bool{"POST /orders k-1": true}}
	rec := send(t, keyedAPI(repo), "POST", "/orders", orderBody, "k-1")
	wantProblem(t, rec, 409, "idempotency-key-in-flight")
	if rec.Header().Get("Retry-After") == "" {
		t.Error("409 without Retry-After")
	}
	if len(repo.orders) != 0 {
		t.Fatal("an order was stored while its key was in flight")
	}
}
