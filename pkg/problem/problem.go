// Package problem is the HTTP edge of the application error model (package
// apperr): it renders every error a service's Echo handlers return as an RFC
// 9457 problem+json document, with the status that the error's code maps to.
// Both services use it, so their error answers have one shape.
package problem

import (
	_ "embed"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/failure"
)

// OpenAPI is the OpenAPI 3.1 fragment defining #/components/schemas/Problem,
// the schema of every error body; each service merges it into its document
// (apidoc.Build).
//
//go:embed openapi.yaml
var OpenAPI []byte

// ContentType is the media type of error responses (RFC 9457).
const ContentType = "application/problem+json"

// TypeBase is where problem types are documented (docs/problems.md); a problem's
// type is TypeBase + its slug.
const TypeBase = "https://github.com/onceflow/onceflow/blob/main/docs/problems.md#"

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

// Kind is what an application error code becomes over HTTP.
type Kind struct {
	Status int
	// Slug names the problem type (TypeBase + Slug).
	Slug  string
	Title string
	// RetryAfter sets "Retry-After: 1": the same request may succeed shortly.
	RetryAfter bool
}

// kinds maps the codes every service shares.
var kinds = map[apperr.Code]Kind{
	apperr.CodeInvalid:     {http.StatusUnprocessableEntity, "invalid-input", "The request is not valid", false},
	apperr.CodeNotFound:    {http.StatusNotFound, "not-found", "Not found", false},
	apperr.CodeConflict:    {http.StatusConflict, "conflict", "Not possible in the current state", false},
	apperr.CodeUnavailable: {http.StatusServiceUnavailable, "unavailable", "Temporarily unavailable", true},
	apperr.CodeInternal:    {http.StatusInternalServerError, "internal", "Internal error", false},
}

// Config configures Handler.
type Config struct {
	// Kinds maps a service's own codes (beyond apperr's) to HTTP. A code that
	// neither apperr nor Kinds knows is rendered as internal.
	Kinds map[apperr.Code]Kind
	// CorrelationID, if set, returns the request's correlation id, which the
	// problem carries and the log line of a server error names.
	CorrelationID func(c echo.Context) string
}

// Handler returns an Echo error handler that renders every error as
// problem+json: an *apperr.Error by its code (its Message as detail, its Fields
// as errors), Echo's own errors (unknown route, wrong method, oversized body,
// malformed input) by their status, a storage error that package failure
// classes as an outage or as a transaction the database aborted for a
// concurrent one as unavailable (nothing was stored, or the client's retry
// settles it), anything else as internal. A 5xx is logged
// with its cause; a 500 shows the caller only a generic detail and the
// correlation id. Nothing is written if the response has already started.
func Handler(logger *slog.Logger, cfg Config) echo.HTTPErrorHandler {
	kindOf := func(code apperr.Code) Kind {
		if k, ok := cfg.Kinds[code]; ok {
			return k
		}
		if k, ok := kinds[code]; ok {
			return k
		}
		return kinds[apperr.CodeInternal]
	}
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := Problem{Instance: c.Request().URL.Path}
		if cfg.CorrelationID != nil {
			p.CorrelationID = cfg.CorrelationID(c)
		}
		var k Kind
		var he *echo.HTTPError
		switch ae := apperr.As(err); {
		case ae != nil:
			k = kindOf(ae.Code)
			p.Detail, p.Errors = ae.Message, ae.Fields
		case errors.As(err, &he):
			k = Kind{Status: he.Code, Slug: "http-" + strconv.Itoa(he.Code), Title: http.StatusText(he.Code)}
			if msg, ok := he.Message.(string); ok {
				p.Detail = msg
			}
			if he.Code == http.StatusBadRequest {
				k.Slug, k.Title = "malformed-request", "The request could not be read"
			}
			// Echo's 503 (a request that ran out of its time) may succeed on a
			// retry like the application's: every 503 says when (Retry-After).
			k.RetryAfter = he.Code == http.StatusServiceUnavailable
		case failure.IsUnavailable(err), failure.IsAborted(err):
			k = kinds[apperr.CodeUnavailable]
			p.Detail = "the database is unavailable or a concurrent change won; try again"
		default:
			k = kinds[apperr.CodeInternal]
		}
		if k.Status >= 500 {
			logger.ErrorContext(c.Request().Context(), "request failed", "status", k.Status,
				"path", c.Request().URL.Path, "correlation_id", p.CorrelationID, "err", err)
			if k.Status == http.StatusInternalServerError {
				p.Detail = "something went wrong on our side; quote the correlation id when reporting it"
			}
		}
		write(c.Response(), k, p)
	}
}

// Write answers r with the problem of kind k and detail. It is for handlers in
// front of Echo (httpserver's guard), which refuse a request before Echo's
// middlewares give it a correlation id; Handler renders Echo's errors the same way.
func Write(w http.ResponseWriter, r *http.Request, k Kind, detail string) {
	write(w, k, Problem{Detail: detail, Instance: r.URL.Path})
}

// write completes p with k's type, title and status and writes it.
func write(w http.ResponseWriter, k Kind, p Problem) {
	p.Type, p.Title, p.Status = TypeBase+k.Slug, k.Title, k.Status
	body, _ := json.Marshal(p) // strings, a map of strings and an int: cannot fail
	w.Header().Set("Content-Type", ContentType)
	if k.RetryAfter {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(k.Status)
	_, _ = w.Write(append(body, '\n'))
}
