package http_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/poison/poisonhttp"
	orderhttp "github.com/onceflow/onceflow/services/order/internal/adapters/http"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

type noHolds struct{}

func (noHolds) Holds(context.Context, string) ([]app.Hold, error) { return nil, nil }

type oneNotDone struct{}

func (oneNotDone) NotDoneBefore(context.Context, time.Time, int) ([]string, error) {
	return []string{"o-1"}, nil
}
func (oneNotDone) OldestNotDone(context.Context) (time.Time, error) { return time.Time{}, nil }

type downPayment struct{}

func (downPayment) Report(context.Context, string) (app.PaymentReport, error) {
	return app.PaymentReport{}, errors.New("connection refused")
}

// TestDiagnosisJSON: the diagnosis answers as the document says, behind the
// admin token, and an unknown order is a 404 problem.
func TestDiagnosisJSON(t *testing.T) {
	t.Parallel()
	repo := &memOrders{orders: map[string]*domain.Order{"o-1": {ID: "o-1", Status: domain.StatusPending, Version: 1}}}
	svc := app.New(repo, fixedTimeline{}, slog.New(slog.DiscardHandler))
	svc.Diagnosis = app.DiagnosisConfig{Holds: noHolds{}, Payment: downPayment{}, PaymentTimeout: time.Minute, NotDone: oneNotDone{}}
	api := orderhttp.NewServer(svc, orderhttp.Config{RequestTimeout: time.Second,
		Ready: func(context.Context) error { return nil }}, slog.New(slog.DiscardHandler))
	api.GET("/orders/:id/diagnosis", orderhttp.Diagnosis(svc), poisonhttp.AdminOnly("secret")...)
	api.GET("/admin/orders/stuck", orderhttp.Stuck(svc), poisonhttp.AdminOnly("secret")...)

	cases := []struct {
		name, path, token string
		status            int
		body              string
	}{
		{"held", "/orders/o-1/diagnosis", "secret", http.StatusOK,
			`{"order_id":"o-1","status":"PENDING","stage":"awaiting_payment","version":1,"cause":{"code":"payment_service_unreachable","service":"payment",`},
		{"unknown order", "/orders/o-2/diagnosis", "secret", http.StatusNotFound, `"status":404`},
		{"no token", "/orders/o-1/diagnosis", "", http.StatusUnauthorized, `"status":401`},
		{"stuck list", "/admin/orders/stuck?older_than_seconds=60", "secret", http.StatusOK,
			`{"groups":[{"cause":"payment_service_unreachable","orders":[{"order_id":"o-1",`},
		{"stuck list, bad threshold", "/admin/orders/stuck?older_than_seconds=soon", "secret", http.StatusBadRequest, `"status":400`},
		{"stuck list, limit too large", "/admin/orders/stuck?limit=201", "secret", http.StatusBadRequest, `"status":400`},
		{"stuck list, threshold too large", "/admin/orders/stuck?older_than_seconds=2147483648", "secret", http.StatusBadRequest, `"status":400`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, c.path, nil)
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			rec := serve(t, api, req)
			if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.body) {
				t.Fatalf("GET %s = %d %s, want %d with %s", c.path, rec.Code, rec.Body, c.status, c.body)
			}
		})
	}
}
