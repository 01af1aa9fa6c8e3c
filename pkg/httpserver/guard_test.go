package httpserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"

	"github.com/onceflow/onceflow/pkg/problem"
)

// TestGuard: what the guard lets through to the handler and what it refuses,
// with which problem, for browser and non-browser requests.
func TestGuard(t *testing.T) {
	t.Parallel()
	const order = `{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`
	tests := []struct {
		name    string
		allowed []string // AllowedHosts; nil for the default
		method  string
		host    string
		header  map[string]string
		body    string
		want    string // the problem's slug, "" when the handler must be called
	}{
		// Host: names from the list, any IP address, no Host at all.
		{name: "localhost", method: "GET", host: "localhost:8080"},
		{name: "localhost in capitals with a trailing dot", method: "GET", host: "LOCALHOST.:8080"},
		{name: "IPv4 address", method: "GET", host: "127.0.0.1:8080"},
		{name: "IPv6 address", method: "GET", host: "[::1]:8080"},
		{name: "LAN address", method: "GET", host: "192.168.1.20"},
		{name: "no Host (HTTP/1.0)", method: "GET", host: ""},
		{name: "rebound name on a read", method: "GET", host: "rebound.example:8080", want: "misdirected-request"},
		{name: "rebound name on a write", method: "POST", host: "rebound.example:8080",
			header: map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}, body: order, want: "misdirected-request"},
		{name: "a configured name", allowed: []string{"order"}, method: "GET", host: "order:8080"},
		{name: "the list replaces the default", allowed: []string{"order"}, method: "GET", host: "localhost:8080", want: "misdirected-request"},

		// Cross-origin browser requests.
		{name: "JSON from a page of another site", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, body: order, want: "cross-origin-request"},
		{name: "text/plain from a page of another site", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, body: order, want: "cross-origin-request"},
		{name: "form from a page of another site", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "cross-site", "Origin": "null"}, body: "a=1", want: "cross-origin-request"},
		{name: "from another port of the same host", method: "POST", host: "localhost:8080",
			header: map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:3000"}, want: "cross-origin-request"},
		{name: "foreign Origin from a browser without Sec-Fetch-Site", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": "text/plain", "Origin": "https://evil.example"}, body: order, want: "cross-origin-request"},
		{name: "a read from a page of another site", method: "GET", host: "localhost:8080",
			header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
		{name: "JSON from the service's own page", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin", "Origin": "http://localhost:8080"}, body: order},
		{name: "Origin equal to Host without Sec-Fetch-Site", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": "application/json", "Origin": "http://localhost:8080"}, body: order},

		// Media types of state-changing requests from clients that are not browsers.
		{name: "JSON (curl -H, Go clients)", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": "application/json"}, body: order},
		{name: "JSON with a charset", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": "Application/JSON; charset=utf-8"}, body: order},
		{name: "no body and no Content-Type (curl -XPOST)", method: "POST", host: "localhost:8080"},
		{name: "form (curl -d)", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: order, want: "unsupported-media-type"},
		{name: "a form without fields", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, want: "unsupported-media-type"},
		{name: "text/plain", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": "text/plain;charset=UTF-8"}, body: order, want: "unsupported-media-type"},
		{name: "multipart", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, body: "--x--", want: "unsupported-media-type"},
		{name: "problem+json is no request type", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": problem.ContentType}, body: order, want: "unsupported-media-type"},
		{name: "not a media type", method: "POST", host: "localhost:8080",
			header: map[string]string{"Content-Type": "json;;"}, body: order, want: "unsupported-media-type"},
		{name: "a body without Content-Type", method: "POST", host: "localhost:8080", body: order, want: "unsupported-media-type"},
		{name: "a read with a text body", method: "GET", host: "localhost:8080",
			header: map[string]string{"Content-Type": "text/plain"}, body: "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			called := false
			h := Config{AllowedHosts: tt.allowed}.Guard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				called = true
				w.WriteHeader(http.StatusNoContent)
			}))
			req := httptest.NewRequest(tt.method, "/orders", strings.NewReader(tt.body))
			req.Host = tt.host
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			if tt.want == "" {
				if !called || rec.Code != http.StatusNoContent {
					t.Fatalf("refused with %d %s, want it passed to the handler", rec.Code, rec.Body)
				}
				return
			}
			if called {
				t.Fatalf("the handler was called; want %s", tt.want)
			}
			if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
				t.Fatalf("status %d, Content-Type %q, want a %s problem; body %s", rec.Code, ct, tt.want, rec.Body)
			}
			var p problem.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(p.Type, "#"+tt.want) || p.Status != rec.Code || p.Title == "" || p.Detail == "" || p.Instance != "/orders" {
				t.Fatalf("%d %+v, want a complete %s problem", rec.Code, p, tt.want)
			}
		})
	}
}

// TestServerIsGuarded: the server Config.Server builds answers through the
// guard, so no service can mount a route beside it.
func TestServerIsGuarded(t *testing.T) {
	t.Parallel()
	called := false
	s := Config{}.Server(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Host = "rebound.example:8080"
	rec := httptest.NewRecorder()
	s.Handler.ServeHTTP(rec, req)
	if called || rec.Code != http.StatusMisdirectedRequest {
		t.Fatalf("a rebound Host got %d (handler called: %v), want 421", rec.Code, called)
	}
}

func TestAllowedHostsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		hosts   []string
		wantErr bool
	}{
		{[]string{"localhost", "order", "payment_1", "api.example.com", "Orders.Internal."}, false},
		{[]string{"127.0.0.1"}, false},
		{[]string{"localhost:8080"}, true},
		{[]string{"http://order"}, true},
		{[]string{"*.example.com"}, true},
		{[]string{"::1"}, true},
		{[]string{"order", ""}, true},
	}
	for _, tt := range tests {
		c := Config{AllowedHosts: tt.hosts}.Defaults()
		if err := c.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("AllowedHosts %q: Validate() = %v, want error: %v", tt.hosts, err, tt.wantErr)
		}
	}
}

// TestAllowedHostsFromTheEnvironment: the variable is a comma-separated list,
// spaces around the names allowed.
func TestAllowedHostsFromTheEnvironment(t *testing.T) {
	t.Setenv("ORDER_HTTP_ALLOWED_HOSTS", "localhost, order")
	var c Config
	if err := env.ParseWithOptions(&c, env.Options{Prefix: "ORDER_HTTP_"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
	h := c.Guard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for host, want := range map[string]int{"order:8080": 204, "localhost:8080": 204, "payment:8081": 421} {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %s with ORDER_HTTP_ALLOWED_HOSTS=%q: %d, want %d", host, "localhost, order", rec.Code, want)
		}
	}
}
