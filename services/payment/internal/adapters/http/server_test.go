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

	"github.com/onceflow/onceflow/pkg/consumer/stop"
	"github.com/onceflow/onceflow/pkg/problem"
	paymenthttp "github.com/onceflow/onceflow/services/payment/internal/adapters/http"
)

// TestReadiness: /readyz answers 200 while the check passes, and a 503
// problem+json from the shared renderer (type "unavailable", Retry-After) while
// it fails; an unknown route is a problem too.
func TestReadiness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		path       string
		ready      error
		wantStatus int
		wantType   string
	}{
		{"ready", "/readyz", nil, http.StatusOK, ""},
		{"database down", "/readyz", errors.New("dial tcp: connection refused"), http.StatusServiceUnavailable, "unavailable"},
		{"unknown route", "/nothing", nil, http.StatusNotFound, "http-404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := paymenthttp.NewServer(func(context.Context) error { return tt.ready }, nil, slog.New(slog.DiscardHandler))
			rec := document(t).Serve(t, api, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			if tt.wantType == "" {
				return
			}
			var p problem.Problem
			if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
				t.Fatalf("Content-Type %q, want %q", ct, problem.ContentType)
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Type != problem.TypeBase+tt.wantType || p.Status != tt.wantStatus {
				t.Fatalf("problem %+v (%v), want type %s", p, err, tt.wantType)
			}
		})
	}
}

// TestLivenessNamesTheStoppedConsumer: /healthz answers 200 while alive, and a
// 503 problem+json naming the consumer, the message and the reason while a
// consumer gave up (the stop strategy), without the handler's error text.
func TestLivenessNamesTheStoppedConsumer(t *testing.T) {
	t.Parallel()
	stopped := &stop.StoppedError{Consumer: "payment.order-events", MessageID: "m-1", Key: "o-1",
		ReasonCode: "handler_failed", Err: errors.New("Error 1054: Unknown column 'secret'"), Since: time.Now()}
	tests := []struct {
		name       string
		alive      error
		wantStatus int
	}{
		{"alive", nil, http.StatusOK},
		{"a consumer gave up", stopped, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := paymenthttp.NewServer(func(context.Context) error { return nil },
				func(context.Context) error { return tt.alive }, slog.New(slog.DiscardHandler))
			rec := document(t).Serve(t, api, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			if tt.alive == nil {
				return
			}
			var p problem.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Type != problem.TypeBase+"unavailable" {
				t.Fatalf("problem %+v (%v), want type unavailable", p, err)
			}
			for _, want := range []string{"payment.order-events", "m-1", "handler_failed"} {
				if !strings.Contains(p.Detail, want) {
					t.Errorf("detail %q does not name %q", p.Detail, want)
				}
			}
			if strings.Contains(p.Detail, "secret") {
				t.Errorf("detail %q shows the handler's error text", p.Detail)
			}
		})
	}
}
