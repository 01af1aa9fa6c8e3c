package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

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
			api := paymenthttp.NewServer(func(context.Context) error { return tt.ready }, slog.New(slog.DiscardHandler))
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
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
