package service

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/pkg/apidoc/apidoctest"
	"github.com/onceflow/onceflow/pkg/diagnose"
	"github.com/onceflow/onceflow/pkg/httpserver"
	"github.com/onceflow/onceflow/pkg/metrics"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/poison/poisonhttp"
	"github.com/onceflow/onceflow/pkg/problem"
	paymenthttp "github.com/onceflow/onceflow/services/payment/internal/adapters/http"
)

// document is the payment service's OpenAPI document, as mountRoutes serves it.
var document = apidoctest.Once(paymenthttp.OpenAPI, problem.OpenAPI, httpserver.OpenAPI, poisonhttp.OpenAPI, diagnose.OpenAPI)

// TestWebPagesOfOtherOriginsCannotActOrRead (issue 24): the payment service as
// Run serves it refuses its admin actions to pages of other origins and to
// bodies that are not JSON, and every request for a name rebound to it; compose's
// service name, once configured, is answered. A request that passes the guard
// and has no token gets the admin endpoints' own 401 (the poison tool, empty
// here, is never reached).
func TestWebPagesOfOtherOriginsCannotActOrRead(t *testing.T) {
	t.Parallel()
	crossSite := map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example", "Authorization": "Bearer secret"}
	tests := []struct {
		name        string
		allowed     string // PAYMENT_HTTP_ALLOWED_HOSTS, "" for the default
		method      string
		path        string
		host        string
		header      map[string]string
		body        string
		wantStatus  int
		wantProblem string
	}{
		{name: "admin replay from another site", method: "POST", path: "/admin/poison/replay", host: "localhost:8081",
			header: crossSite, wantStatus: 403, wantProblem: "cross-origin-request"},
		{name: "admin purge as a form from another site", method: "POST", path: "/admin/poison/purge", host: "localhost:8081",
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "cross-site"}, body: "up_to=9",
			wantStatus: 403, wantProblem: "cross-origin-request"},
		{name: "admin purge with a text body", method: "POST", path: "/admin/poison/purge", host: "127.0.0.1:8081",
			header: map[string]string{"Content-Type": "text/plain", "Authorization": "Bearer secret"}, body: "x",
			wantStatus: 415, wantProblem: "unsupported-media-type"},
		{name: "rebound: metrics", method: "GET", path: "/metrics", host: "rebound.example:8081",
			wantStatus: 421, wantProblem: "misdirected-request"},
		{name: "rebound: poison list", method: "GET", path: "/admin/poison", host: "rebound.example:8081",
			header: map[string]string{"Authorization": "Bearer secret"}, wantStatus: 421, wantProblem: "misdirected-request"},
		{name: "compose's name, not configured", method: "GET", path: "/healthz", host: "payment:8081",
			wantStatus: 421, wantProblem: "misdirected-request"},
		{name: "compose's name, configured", allowed: "localhost,payment", method: "GET", path: "/healthz", host: "payment:8081",
			wantStatus: 200},
		{name: "admin replay from curl without a token", method: "POST", path: "/admin/poison/replay", host: "localhost:8081",
			wantStatus: 401, wantProblem: "http-401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			cfg.AdminToken = "secret"
			if tt.allowed != "" {
				cfg.HTTP.AllowedHosts = strings.Split(tt.allowed, ",")
			}
			api := paymenthttp.NewServer(func(context.Context) error { return nil }, nil, slog.New(slog.DiscardHandler))
			if err := mountRoutes(api, cfg, &poison.Tool{}, poison.DryRunConfig{}, paymenthttp.Diagnosis(nil), metrics.New()); err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			req.Host = tt.host
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := document(t).Serve(t, cfg.HTTP.Server(api).Handler, req) // what Run serves

			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %.300s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantProblem != "" && (rec.Header().Get("Content-Type") != problem.ContentType || !strings.Contains(rec.Body.String(), "#"+tt.wantProblem+`"`)) {
				t.Fatalf("%s %.300s; want the %s problem", rec.Header().Get("Content-Type"), rec.Body, tt.wantProblem)
			}
		})
	}
}
