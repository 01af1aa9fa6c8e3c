package service

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/apidoc/apidoctest"
	"github.com/onceflow/onceflow/pkg/diagnose"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/httpserver"
	"github.com/onceflow/onceflow/pkg/metrics"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/poison/poisonhttp"
	"github.com/onceflow/onceflow/pkg/problem"
	orderhttp "github.com/onceflow/onceflow/services/order/internal/adapters/http"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// document is the order service's OpenAPI document, as mountRoutes serves it.
var document = apidoctest.Once(orderhttp.OpenAPI, problem.OpenAPI, httpserver.OpenAPI, poisonhttp.OpenAPI, diagnose.OpenAPI)

// spyOrders is an app.Orders that records every call; each order it is asked
// for exists and is PENDING.
type spyOrders struct {
	mu    sync.Mutex
	calls []string
}

func (s *spyOrders) record(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, name)
}

func (s *spyOrders) recorded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func pending(id string) *domain.Order {
	return &domain.Order{ID: id, CustomerID: "c-1", AmountCents: 1250, Currency: "EUR", Status: domain.StatusPending, Version: 1,
		CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
}

func (s *spyOrders) Add(context.Context, *domain.Order, ...events.Event) error {
	s.record("Add")
	return nil
}

func (s *spyOrders) Update(_ context.Context, id string, fn func(*domain.Order) ([]events.Event, error)) error {
	s.record("Update")
	_, err := fn(pending(id))
	return err
}

func (s *spyOrders) Get(_ context.Context, id string) (*domain.Order, error) {
	s.record("Get")
	return pending(id), nil
}

func (s *spyOrders) ListByCustomer(context.Context, string, int) ([]*domain.Order, error) {
	s.record("ListByCustomer")
	return nil, nil
}

func (s *spyOrders) PendingBefore(context.Context, time.Time, int) ([]string, error) {
	s.record("PendingBefore")
	return nil, nil
}

func (s *spyOrders) AddOnce(context.Context, app.KeyClaim, *domain.Order, ...events.Event) (*app.StoredKey, error) {
	s.record("AddOnce")
	return nil, nil
}

func (s *spyOrders) UpdateOnce(_ context.Context, _ app.KeyClaim, id string, fn func(*domain.Order) ([]events.Event, error)) (*app.StoredKey, error) {
	s.record("UpdateOnce")
	_, err := fn(pending(id))
	return nil, err
}

func (s *spyOrders) DeleteExpiredKeys(context.Context, time.Time, int) (int, error) {
	s.record("DeleteExpiredKeys")
	return 0, nil
}

// TestWebPagesOfOtherOriginsCannotActOrRead (issue 24): the order service as
// Run serves it (the adapter's server, mountRoutes, the http.Server's handler)
// takes no order or cancellation from a page of another origin, answers no
// request for a name rebound to it (DNS rebinding), and its console forwards
// no cross-site request to the payment service, while curl, Go clients and
// the console's own page keep working. A refused request never reaches the
// application: the spy records no call.
func TestWebPagesOfOtherOriginsCannotActOrRead(t *testing.T) {
	t.Parallel()
	const (
		order   = `{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`
		json    = "application/json"
		form    = "application/x-www-form-urlencoded"
		text    = "text/plain;charset=UTF-8"
		rebound = "rebound.example:8080" // a page's name, resolving to this service
	)
	crossSite := map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
	oldBrowser := map[string]string{"Origin": "https://evil.example"} // no Sec-Fetch-Site
	sameOrigin := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost:8080"}
	admin := map[string]string{"Authorization": "Bearer secret"}
	with := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	tests := []struct {
		name        string
		method      string
		path        string
		host        string // "" for localhost:8080
		contentType string
		header      map[string]string
		body        string
		wantStatus  int
		wantProblem string   // the problem's slug; "" for a success
		wantCalls   []string // the application's calls into the spy
		wantPayment int      // requests the payment service received
	}{
		// A page of another site places or cancels an order: a text/plain fetch,
		// an HTML form, and the same from a browser without Sec-Fetch-Site.
		{name: "text/plain order from another site", method: "POST", path: "/orders", contentType: text, header: crossSite, body: order,
			wantStatus: 403, wantProblem: "cross-origin-request"},
		{name: "form order from another site", method: "POST", path: "/orders", contentType: form, header: crossSite, body: "customer_id=c-1",
			wantStatus: 403, wantProblem: "cross-origin-request"},
		{name: "text/plain order from an old browser", method: "POST", path: "/orders", contentType: text, header: oldBrowser, body: order,
			wantStatus: 403, wantProblem: "cross-origin-request"},
		{name: "form cancel from another site", method: "POST", path: "/orders/o-1/cancel", contentType: form, header: crossSite,
			wantStatus: 403, wantProblem: "cross-origin-request"},
		{name: "bodiless cancel from another site (fetch, no-cors)", method: "POST", path: "/orders/o-1/cancel", header: crossSite,
			wantStatus: 403, wantProblem: "cross-origin-request"},
		{name: "form cancel from an old browser", method: "POST", path: "/orders/o-1/cancel", contentType: form, header: oldBrowser,
			wantStatus: 403, wantProblem: "cross-origin-request"},
		// The same bodies without any browser header: refused for their type.
		{name: "form order (curl -d without a type)", method: "POST", path: "/orders", contentType: form, body: order,
			wantStatus: 415, wantProblem: "unsupported-media-type"},
		{name: "text/plain order", method: "POST", path: "/orders", contentType: text, body: order,
			wantStatus: 415, wantProblem: "unsupported-media-type"},
		{name: "form cancel", method: "POST", path: "/orders/o-1/cancel", contentType: form, body: "x=1",
			wantStatus: 415, wantProblem: "unsupported-media-type"},
		// What must keep working.
		{name: "JSON order from curl or a Go client", method: "POST", path: "/orders", contentType: json, body: order,
			wantStatus: 201, wantCalls: []string{"Add"}},
		{name: "JSON order from the service's own page", method: "POST", path: "/orders", contentType: json, header: sameOrigin, body: order,
			wantStatus: 201, wantCalls: []string{"Add"}},
		{name: "cancel from curl -XPOST", method: "POST", path: "/orders/o-1/cancel",
			wantStatus: 200, wantCalls: []string{"Update"}},
		{name: "a customer's orders", method: "GET", path: "/orders?customer_id=c-1",
			wantStatus: 200, wantCalls: []string{"ListByCustomer"}},
		{name: "a customer's orders by IP address", method: "GET", path: "/orders?customer_id=c-1", host: "127.0.0.1:8080",
			wantStatus: 200, wantCalls: []string{"ListByCustomer"}},
		// DNS rebinding: the page's own name, now resolving here. Reads included.
		{name: "rebound: a customer's orders", method: "GET", path: "/orders?customer_id=c-1", host: rebound,
			wantStatus: 421, wantProblem: "misdirected-request"},
		{name: "rebound: an order", method: "GET", path: "/orders/o-1", host: rebound,
			wantStatus: 421, wantProblem: "misdirected-request"},
		{name: "rebound: metrics", method: "GET", path: "/metrics", host: rebound,
			wantStatus: 421, wantProblem: "misdirected-request"},
		{name: "rebound: the console's event stream", method: "GET", path: "/console/events", host: rebound,
			wantStatus: 421, wantProblem: "misdirected-request"},
		{name: "rebound: a same-origin JSON order", method: "POST", path: "/orders", host: rebound, contentType: json,
			header: map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://" + rebound}, body: order,
			wantStatus: 421, wantProblem: "misdirected-request"},
		// The admin endpoints, and the console's proxy to the payment service's.
		{name: "admin replay from another site", method: "POST", path: "/admin/poison/replay", header: with(crossSite, admin),
			wantStatus: 403, wantProblem: "cross-origin-request"},
		{name: "proxied admin replay from another site", method: "POST", path: "/console/payment/admin/poison/replay", header: with(crossSite, admin),
			wantStatus: 403, wantProblem: "cross-origin-request"},
		{name: "proxied admin purge as a form from another site", method: "POST", path: "/console/payment/admin/poison/purge", contentType: form,
			header: with(crossSite, admin), wantStatus: 403, wantProblem: "cross-origin-request"},
		{name: "proxied admin replay with a text body", method: "POST", path: "/console/payment/admin/poison/replay", contentType: text,
			header: admin, body: "x", wantStatus: 415, wantProblem: "unsupported-media-type"},
		{name: "rebound: proxied admin list", method: "GET", path: "/console/payment/admin/poison", host: rebound, header: admin,
			wantStatus: 421, wantProblem: "misdirected-request"},
		{name: "proxied admin replay from the console's own page", method: "POST", path: "/console/payment/admin/poison/replay",
			header: with(sameOrigin, admin), wantStatus: 200, wantPayment: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var paymentHits int
			var mu sync.Mutex
			payment := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				mu.Lock()
				paymentHits++
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"replayed":[]}`))
			}))
			defer payment.Close()

			logger := slog.New(slog.DiscardHandler)
			cfg := DefaultConfig()
			cfg.AdminToken, cfg.ConsolePaymentURL = "secret", payment.URL
			orders := &spyOrders{}
			api := orderhttp.NewServer(app.New(orders, nil, logger), orderhttp.Config{RequestTimeout: cfg.RequestTimeout,
				Ready: func(context.Context) error { return nil }}, logger)
			if err := mountRoutes(api, cfg, &poison.Tool{}, poison.DryRunConfig{}, app.New(nil, nil, logger), nil, metrics.New(app.SagaOutcomes...), logger); err != nil {
				t.Fatal(err)
			}
			handler := cfg.HTTP.Server(api).Handler // what Run serves

			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			req.Host = "localhost:8080"
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if !strings.HasPrefix(tt.path, "/console/") { // the console is not in the document
				document(t).Recorded(t, req, rec)
			}

			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d; body %.300s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantProblem != "" {
				if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType || !strings.Contains(rec.Body.String(), "#"+tt.wantProblem+`"`) {
					t.Errorf("Content-Type %q, body %.300s; want the %s problem", ct, rec.Body, tt.wantProblem)
				}
			}
			if got := orders.recorded(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("the application called %v, want %v", got, tt.wantCalls)
			}
			mu.Lock()
			defer mu.Unlock()
			if paymentHits != tt.wantPayment {
				t.Errorf("the payment service received %d requests, want %d", paymentHits, tt.wantPayment)
			}
		})
	}
}

// TestDocumentedCurlCommandsSendJSON: every curl command the README and `make
// run` show that sends a body to a service (-d) also sends it as JSON; curl's
// default type for -d is a form's, which the guard refuses with 415.
func TestDocumentedCurlCommandsSendJSON(t *testing.T) {
	t.Parallel()
	sendsBody := regexp.MustCompile(`curl .*localhost:808[01]/.* (-d|--data[a-z-]*) `)
	for _, doc := range []string{"../../../../README.md", "../../../../deploy/local/run.sh"} {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i, line := range strings.Split(string(text), "\n") {
			if !sendsBody.MatchString(line) {
				continue
			}
			n++
			if !strings.Contains(line, "-H 'Content-Type: application/json'") {
				t.Errorf("%s:%d sends a form, which the service refuses (415): %s", doc, i+1, strings.TrimSpace(line))
			}
		}
		if n == 0 {
			t.Errorf("%s shows no curl command with a body: is the pattern stale?", doc)
		}
	}
}
