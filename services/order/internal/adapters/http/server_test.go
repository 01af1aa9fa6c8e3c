package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/problem"
	orderhttp "github.com/onceflow/onceflow/services/order/internal/adapters/http"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// memOrders is an in-memory app.Orders; down makes every call fail like an
// unreachable database.
type memOrders struct {
	orders map[string]*domain.Order
	down   bool
	// keys are the committed idempotency keys by scope and key; inFlight the
	// keys a (pretend) transaction holds.
	keys     map[string]*app.StoredKey
	inFlight map[string]bool
}

func (m *memOrders) claim(k app.KeyClaim) (*app.StoredKey, error) {
	if m.down {
		return nil, errDown
	}
	id := k.Scope + " " + k.Key
	if m.inFlight[id] {
		return nil, app.ErrKeyInFlight
	}
	return m.keys[id], nil
}

func (m *memOrders) record(k app.KeyClaim, o *domain.Order) error {
	if m.keys == nil {
		m.keys = map[string]*app.StoredKey{}
	}
	a, err := k.Render(o)
	m.keys[k.Scope+" "+k.Key] = &app.StoredKey{Fingerprint: k.Fingerprint, Answer: a}
	return err
}

func (m *memOrders) AddOnce(ctx context.Context, k app.KeyClaim, o *domain.Order, evts ...events.Event) (*app.StoredKey, error) {
	if stored, err := m.claim(k); stored != nil || err != nil {
		return stored, err
	}
	if err := m.Add(ctx, o, evts...); err != nil {
		return nil, err
	}
	return nil, m.record(k, o)
}

func (m *memOrders) UpdateOnce(ctx context.Context, k app.KeyClaim, id string, fn func(*domain.Order) ([]events.Event, error)) (*app.StoredKey, error) {
	if stored, err := m.claim(k); stored != nil || err != nil {
		return stored, err
	}
	err := m.Update(ctx, id, func(o *domain.Order) ([]events.Event, error) {
		evts, err := fn(o)
		if err == nil {
			err = m.record(k, o)
		}
		return evts, err
	})
	return nil, err
}

func (m *memOrders) DeleteExpiredKeys(context.Context, time.Time, int) (int, error) { return 0, nil }

var errDown = &apperr.Error{Code: apperr.CodeUnavailable, Message: "the order database is unavailable, try again"}

func (m *memOrders) Add(_ context.Context, o *domain.Order, _ ...events.Event) error {
	if m.down {
		return errDown
	}
	m.orders[o.ID] = o
	return nil
}

func (m *memOrders) Update(_ context.Context, id string, fn func(*domain.Order) ([]events.Event, error)) error {
	if m.down {
		return errDown
	}
	o, ok := m.orders[id]
	if !ok {
		return domain.ErrNotFound
	}
	_, err := fn(o)
	return err
}

func (m *memOrders) Get(_ context.Context, id string) (*domain.Order, error) {
	if m.down {
		return nil, errDown
	}
	if o, ok := m.orders[id]; ok {
		return o, nil
	}
	return nil, domain.ErrNotFound
}

func (m *memOrders) PendingBefore(context.Context, time.Time, int) ([]string, error) { return nil, nil }

func (m *memOrders) ListByCustomer(context.Context, string, int) ([]*domain.Order, error) {
	if m.down {
		return nil, errDown
	}
	return nil, nil
}

func TestAPIResponses(t *testing.T) {
	t.Parallel()
	existing := &domain.Order{ID: "o-1", CustomerID: "c-1", AmountCents: 5, Currency: "EUR", Status: domain.StatusPending, Version: 1}
	tests := []struct {
		name        string
		down        bool
		method      string
		path        string
		body        string
		wantStatus  int
		wantProblem string // the slug of the problem type, "" for a success
		wantInBody  string
	}{
		{"place", false, "POST", "/orders", `{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`, 201, "", `"status":"PENDING"`},
		{"place with a trailing newline", false, "POST", "/orders", `{"customer_id":"c-1","amount_cents":1,"currency":"EUR"}` + "\n", 201, "", `"amount_cents":1`},
		{"invalid fields", false, "POST", "/orders", `{"customer_id":"","amount_cents":0,"currency":"eur"}`, 422, "invalid-input", `"amount_cents":"must be`},
		{"not json", false, "POST", "/orders", `customer_id=c-1`, 400, "malformed-request", "not a valid JSON object"},
		{"empty body", false, "POST", "/orders", ``, 400, "malformed-request", "empty"},
		{"unknown field", false, "POST", "/orders", `{"customer_id":"c-1","amount_cents":1,"currency":"EUR","coupon":"x"}`, 400, "malformed-request", "coupon"},
		{"wrong type", false, "POST", "/orders", `{"customer_id":"c-1","amount_cents":"12","currency":"EUR"}`, 400, "malformed-request", "amount_cents"},
		{"two values", false, "POST", "/orders", `{"customer_id":"c-1","amount_cents":1,"currency":"EUR"}{}`, 400, "malformed-request", "more than one"},
		{"null body", false, "POST", "/orders", `null`, 422, "invalid-input", "customer_id"},
		{"array body", false, "POST", "/orders", `[]`, 400, "malformed-request", ""},
		{"amount beyond int64", false, "POST", "/orders", `{"customer_id":"c-1","amount_cents":99999999999999999999,"currency":"EUR"}`, 400, "malformed-request", "amount_cents"},
		{"fractional amount", false, "POST", "/orders", `{"customer_id":"c-1","amount_cents":1.5,"currency":"EUR"}`, 400, "malformed-request", "amount_cents"},
		{"too large", false, "POST", "/orders", `{"customer_id":"` + strings.Repeat("x", 70000) + `"}`, 413, "http-413", ""},
		{"database down on place", true, "POST", "/orders", `{"customer_id":"c-1","amount_cents":1,"currency":"EUR"}`, 503, "unavailable", "try again"},
		{"get", false, "GET", "/orders/o-1", ``, 200, "", `"id":"o-1"`},
		{"get unknown", false, "GET", "/orders/nope", ``, 404, "not-found", "nope"},
		{"database down on get", true, "GET", "/orders/o-1", ``, 503, "unavailable", ""},
		{"list needs a customer", false, "GET", "/orders", ``, 422, "invalid-input", "customer_id"},
		{"list", false, "GET", "/orders?customer_id=c-1", ``, 200, "", `"orders":[]`},
		{"list for an id no order can have", false, "GET", "/orders?customer_id=c%201", ``, 422, "invalid-input", "customer_id"},
		{"list with an impossible customer id", false, "GET", "/orders?customer_id=%21c%20x", ``, 422, "invalid-input", "customer_id"},
		{"cancel", false, "POST", "/orders/o-1/cancel", ``, 200, "", `"status":"CANCELLED"`},
		{"cancel unknown", false, "POST", "/orders/nope/cancel", ``, 404, "not-found", "nope"},
		{"unknown route", false, "GET", "/nothing-here", ``, 404, "http-404", ""},
		{"wrong method", false, "DELETE", "/orders", ``, 405, "http-405", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o1 := *existing
			repo := &memOrders{orders: map[string]*domain.Order{"o-1": &o1}, down: tt.down}
			svc := app.New(repo, nil, slog.New(slog.DiscardHandler))
			api := orderhttp.NewServer(svc, orderhttp.Config{RequestTimeout: time.Second,
				Ready: func(context.Context) error { return nil }}, slog.New(slog.DiscardHandler))
			rec := serve(t, api, httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body)))

			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tt.wantInBody) {
				t.Errorf("body %s does not contain %q", rec.Body, tt.wantInBody)
			}
			if rec.Header().Get(orderhttp.HeaderCorrelationID) == "" {
				t.Errorf("no %s header", orderhttp.HeaderCorrelationID)
			}
			if tt.wantProblem == "" {
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
				t.Fatalf("Content-Type = %q, want %q", ct, problem.ContentType)
			}
			var p problem.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(p.Type, "#"+tt.wantProblem) || p.Status != tt.wantStatus || p.Title == "" || p.CorrelationID == "" {
				t.Fatalf("problem = %+v, want type #%s and status %d", p, tt.wantProblem, tt.wantStatus)
			}
		})
	}
}

func TestReadinessReflectsTheDatabase(t *testing.T) {
	t.Parallel()
	for _, down := range []bool{false, true} {
		ready := func(context.Context) error {
			if down {
				return errors.New("connection refused")
			}
			return nil
		}
		api := orderhttp.NewServer(app.New(&memOrders{}, nil, slog.New(slog.DiscardHandler)),
			orderhttp.Config{RequestTimeout: time.Second, Ready: ready}, slog.New(slog.DiscardHandler))
		rec := serve(t, api, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		want := map[bool]int{false: 200, true: 503}[down]
		if rec.Code != want {
			t.Errorf("database down=%v: /readyz = %d, want %d", down, rec.Code, want)
		}
	}
}
