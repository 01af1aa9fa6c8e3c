package problem_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/problem"
)

// TestHandler: the one mapping of application error codes to HTTP, a
// service's own codes on top, Echo's errors by their status, and nothing
// internal shown to the caller.
func TestHandler(t *testing.T) {
	t.Parallel()
	const own apperr.Code = "own_code"
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantType   string
		wantDetail string
		wantRetry  bool
	}{
		{"invalid", &apperr.Error{Code: apperr.CodeInvalid, Message: "bad", Fields: map[string]string{"f": "no"}},
			http.StatusUnprocessableEntity, "invalid-input", "bad", false},
		{"not found", &apperr.Error{Code: apperr.CodeNotFound, Message: "none"}, http.StatusNotFound, "not-found", "none", false},
		{"conflict", &apperr.Error{Code: apperr.CodeConflict, Message: "no"}, http.StatusConflict, "conflict", "no", false},
		{"unavailable", &apperr.Error{Code: apperr.CodeUnavailable, Message: "later"}, http.StatusServiceUnavailable, "unavailable", "later", true},
		{"a service's own code", &apperr.Error{Code: own, Message: "mine"}, http.StatusTeapot, "own", "mine", true},
		{"unknown code", &apperr.Error{Code: "nobody_knows", Message: "secret"}, http.StatusInternalServerError, "internal",
			"something went wrong on our side; quote the correlation id when reporting it", false},
		{"foreign error", errors.New("SQL text"), http.StatusInternalServerError, "internal",
			"something went wrong on our side; quote the correlation id when reporting it", false},
		{"database down (a handler that returned the driver's error)", fmt.Errorf("read: %w", &mysql.MySQLError{Number: 2006, Message: "gone away"}),
			http.StatusServiceUnavailable, "unavailable", "the database is unavailable or a concurrent change won; try again", true},
		{"deadlock or lost Galera certification at COMMIT", fmt.Errorf("commit: %w", &mysql.MySQLError{Number: 1213, Message: "Deadlock found"}),
			http.StatusServiceUnavailable, "unavailable", "the database is unavailable or a concurrent change won; try again", true},
		{"other database error", &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, http.StatusInternalServerError, "internal",
			"something went wrong on our side; quote the correlation id when reporting it", false},
		{"echo 404", echo.NewHTTPError(http.StatusNotFound, "no route"), http.StatusNotFound, "http-404", "no route", false},
		{"echo 400", echo.NewHTTPError(http.StatusBadRequest, "broken JSON"), http.StatusBadRequest, "malformed-request", "broken JSON", false},
		{"echo 503 (request timeout)", echo.NewHTTPError(http.StatusServiceUnavailable, "slow"), http.StatusServiceUnavailable, "http-503", "slow", true},
	}
	handler := problem.Handler(slog.New(slog.DiscardHandler), problem.Config{
		Kinds:         map[apperr.Code]problem.Kind{own: {Status: http.StatusTeapot, Slug: "own", Title: "Own", RetryAfter: true}},
		CorrelationID: func(echo.Context) string { return "req-1" },
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/x", nil), rec)
			handler(tt.err, c)
			var p problem.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tt.wantStatus || p.Status != tt.wantStatus || p.Type != problem.TypeBase+tt.wantType ||
				p.Detail != tt.wantDetail || p.Instance != "/x" || p.CorrelationID != "req-1" {
				t.Fatalf("%d %+v, want %d type %s detail %q", rec.Code, p, tt.wantStatus, tt.wantType, tt.wantDetail)
			}
			if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
				t.Fatalf("Content-Type %q", ct)
			}
			if (rec.Header().Get("Retry-After") != "") != tt.wantRetry {
				t.Fatalf("Retry-After %q, want set: %v", rec.Header().Get("Retry-After"), tt.wantRetry)
			}
			if ae := apperr.As(tt.err); ae != nil && ae.Fields != nil && p.Errors["f"] != "no" {
				t.Fatalf("errors %v, want the fields", p.Errors)
			}
		})
	}
}
