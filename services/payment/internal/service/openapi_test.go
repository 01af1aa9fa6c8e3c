package service

import (
	"context"
	"log/slog"
	"testing"

	"github.com/onceflow/onceflow/pkg/apidoc/apidoctest"
	"github.com/onceflow/onceflow/pkg/metrics"
	"github.com/onceflow/onceflow/pkg/poison"
	paymenthttp "github.com/onceflow/onceflow/services/payment/internal/adapters/http"
)

// TestRoutesMatchTheDocument: every route the payment service serves (its
// wiring's mountRoutes on the adapter's server) is in /openapi.json and every
// documented operation is served. Runs without servers.
func TestRoutesMatchTheDocument(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AdminToken = "route-coverage"
	api := paymenthttp.NewServer(func(context.Context) error { return nil }, nil, slog.New(slog.DiscardHandler))
	if err := mountRoutes(api, cfg, &poison.Tool{}, poison.DryRunConfig{}, paymenthttp.Diagnosis(nil), metrics.New()); err != nil {
		t.Fatal(err)
	}
	apidoctest.CoverRoutes(t, api, apidoctest.New(t, apidoctest.Served(t, api)), nil)
}
