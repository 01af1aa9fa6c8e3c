package service

import (
	"context"
	"log/slog"
	"testing"

	"github.com/onceflow/onceflow/pkg/apidoc/apidoctest"
	"github.com/onceflow/onceflow/pkg/metrics"
	"github.com/onceflow/onceflow/pkg/poison"
	orderhttp "github.com/onceflow/onceflow/services/order/internal/adapters/http"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// excludedRoutes are the order service's routes the OpenAPI document does not
// describe, with the reason.
var excludedRoutes = map[string]string{
	"GET /console":                      "the live console's HTML page (ADR 41), for a browser, not an API",
	"GET /console/":                     "redirects to /console",
	"GET /console/static/*":             "the console page's embedded assets",
	"GET /console/events":               "the console's server-sent event stream (text/event-stream)",
	"* /console/payment/admin/poison":   "the console's proxy to the payment service's admin endpoints, described by the payment service's document",
	"* /console/payment/admin/poison/*": "the same proxy, every admin path",
}

// TestRoutesMatchTheDocument: every route the order service serves (its
// wiring's mountRoutes on the adapter's server) is in /openapi.json and every
// documented operation is served, apart from the console's routes. Runs
// without servers.
func TestRoutesMatchTheDocument(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	cfg := DefaultConfig()
	cfg.AdminToken = "route-coverage"
	api := orderhttp.NewServer(app.New(nil, nil, logger), orderhttp.Config{RequestTimeout: cfg.RequestTimeout, Ready: func(context.Context) error { return nil }}, logger)
	if err := mountRoutes(api, cfg, &poison.Tool{}, poison.DryRunConfig{}, app.New(nil, nil, logger), nil, metrics.New(app.SagaOutcomes...), logger); err != nil {
		t.Fatal(err)
	}
	apidoctest.CoverRoutes(t, api, apidoctest.New(t, apidoctest.Served(t, api)), excludedRoutes)
}
