// Package http is the payment service's HTTP endpoint: health and readiness for
// operators and orchestrators, and (mounted by the service) the poison queue's
// admin endpoints. Errors are RFC 9457 problem+json.
package http

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// NewServer returns the Echo instance serving:
//
//	GET /healthz   the process is alive        200
//	GET /readyz    the database answers        200, 503 (also while stopping)
func NewServer(ready func(ctx context.Context) error) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		status, detail := http.StatusInternalServerError, "something went wrong on our side"
		var he *echo.HTTPError
		if errors.As(err, &he) {
			status = he.Code
			detail, _ = he.Message.(string)
		}
		if c.Response().Committed {
			return
		}
		c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
		_ = c.JSON(status, map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail})
	}
	e.Use(middleware.Recover())
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", func(c echo.Context) error {
		if err := ready(c.Request().Context()); err != nil {
			return echo.NewHTTPError(http.StatusServiceUnavailable, "the payment service is stopping or its database does not answer")
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	return e
}
