package http

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/services/order/internal/app"
)

// ProblemContentType is the media type of error responses (RFC 9457).
const ProblemContentType = "application/problem+json"

// problemBase is where problem types are documented (docs/problems.md).
const problemBase = "https://github.com/onceflow/onceflow/blob/main/docs/problems.md#"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Errors names each invalid input field and what is wrong with it.
	Errors map[string]string `json:"errors,omitempty"`
	// CorrelationID identifies the request in the service's logs.
	CorrelationID string `json:"correlation_id,omitempty"`
}

// problemKind is the fixed part of a problem for one application error code.
type problemKind struct {
	status int
	slug   string
	title  string
}

// The one mapping from application error codes to HTTP.
var problemKinds = map[app.Code]problemKind{
	app.CodeInvalid:     {http.StatusUnprocessableEntity, "invalid-input", "The request is not valid"},
	app.CodeNotFound:    {http.StatusNotFound, "not-found", "Not found"},
	app.CodeConflict:    {http.StatusConflict, "conflict", "Not possible in the current state"},
	app.CodeUnavailable: {http.StatusServiceUnavailable, "unavailable", "Temporarily unavailable"},
	app.CodeInternal:    {http.StatusInternalServerError, "internal", "Internal error"},
	app.CodeInvalidKey:  {http.StatusBadRequest, "invalid-idempotency-key", "The Idempotency-Key header is not valid"},
	app.CodeKeyReused:   {http.StatusUnprocessableEntity, "idempotency-key-reused", "The Idempotency-Key was used for a different request"},
	app.CodeKeyInFlight: {http.StatusConflict, "idempotency-key-in-flight", "A request with this Idempotency-Key is in progress"},
}

// errorHandler renders every error as problem+json: application errors by their
// code, Echo's own (unknown route, wrong method, oversized body, malformed input)
// by their status. Internal errors are logged with their cause; the caller sees
// only a generic detail and the correlation id.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := Problem{Instance: c.Request().URL.Path, CorrelationID: correlationID(c)}
		var he *echo.HTTPError
		var ae *app.Error
		switch {
		case errors.As(err, &ae):
			k := problemKinds[ae.Code]
			if k.status == 0 {
				k = problemKinds[app.CodeInternal]
			}
			p.Type, p.Title, p.Status, p.Detail, p.Errors = problemBase+k.slug, k.title, k.status, ae.Message, ae.Fields
			if ae.Code == app.CodeUnavailable || ae.Code == app.CodeKeyInFlight {
				c.Response().Header().Set("Retry-After", "1")
			}
		case errors.As(err, &he):
			p.Status, p.Title = he.Code, http.StatusText(he.Code)
			p.Type = problemBase + "http-" + strconv.Itoa(he.Code)
			if msg, ok := he.Message.(string); ok {
				p.Detail = msg
			}
			if he.Code == http.StatusBadRequest {
				p.Type, p.Title = problemBase+"malformed-request", "The request could not be read"
			}
		default:
			k := problemKinds[app.CodeInternal]
			p.Type, p.Title, p.Status = problemBase+k.slug, k.title, k.status
		}
		if p.Status >= 500 {
			logger.ErrorContext(c.Request().Context(), "request failed", "status", p.Status,
				"path", c.Request().URL.Path, "correlation_id", p.CorrelationID, "err", err)
			if p.Status == http.StatusInternalServerError {
				p.Detail = "something went wrong on our side; quote the correlation id when reporting it"
			}
		}
		c.Response().Header().Set(echo.HeaderContentType, ProblemContentType) // c.JSON keeps a set type
		_ = c.JSON(p.Status, p)
	}
}
