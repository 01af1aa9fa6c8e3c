// Package http is the payment service's HTTP endpoint: health and readiness for
// operators and orchestrators, and (mounted by the service) the poison queue's
// admin endpoints. Errors are RFC 9457 problem+json, rendered by package
// problem like the order service's.
package http

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/problem"
)

// OpenAPI is the OpenAPI 3.1 document of this endpoint (YAML),
// without the poison admin endpoints the service mounts beside it
// (poisonhttp.OpenAPI): the service merges both (apidoc.Build) and serves the
// result at /openapi.json.
//
//go:embed openapi.yaml
var OpenAPI []byte

// NewServer returns the Echo instance serving:
//
//	GET /healthz   the process is alive        200, 503 (a consumer gave up)
//	GET /readyz    the database answers        200, 503 (also while stopping)
//
// alive is the liveness check (normally Consumers.Health): while it fails,
// /healthz answers 503 with its error text as the problem's detail, so that
// text must be safe to show (nil: always alive). The service serves it behind
// httpserver's guard, which answers 421, 403 and 415 before a request
// reaches these routes.
func NewServer(ready, alive func(ctx context.Context) error, logger *slog.Logger) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = problem.Handler(logger, problem.Config{})
	e.Use(middleware.Recover())
	e.GET("/healthz", func(c echo.Context) error {
		if alive != nil {
			if err := alive(c.Request().Context()); err != nil {
				return &apperr.Error{Code: apperr.CodeUnavailable, Message: "the payment service is not alive: " + err.Error(), Err: err}
			}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		if err := ready(c.Request().Context()); err != nil {
			return &apperr.Error{Code: apperr.CodeUnavailable,
				Message: "the payment service is stopping, one of its consumers gave up, or its database does not answer", Err: err}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	return e
}
