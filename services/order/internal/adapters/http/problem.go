package http

import (
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/problem"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// orderKinds maps the order service's own error codes to HTTP; the codes every
// service shares (invalid 422, not found 404, conflict 409, unavailable 503,
// internal 500) are package problem's.
var orderKinds = map[apperr.Code]problem.Kind{
	app.CodeInvalidKey:  {Status: http.StatusBadRequest, Slug: "invalid-idempotency-key", Title: "The Idempotency-Key header is not valid"},
	app.CodeKeyReused:   {Status: http.StatusUnprocessableEntity, Slug: "idempotency-key-reused", Title: "The Idempotency-Key was used for a different request"},
	app.CodeKeyInFlight: {Status: http.StatusConflict, Slug: "idempotency-key-in-flight", Title: "A request with this Idempotency-Key is in progress", RetryAfter: true},
}

// errorHandler renders every error as problem+json (package problem), with the
// request's correlation id.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return problem.Handler(logger, problem.Config{Kinds: orderKinds, CorrelationID: correlationID})
}
