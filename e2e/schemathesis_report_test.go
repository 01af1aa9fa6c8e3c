package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSummarizeHAR: the post-run assertions of TestAPISchemathesis count what
// they must: every answered request, every 5xx, and every error response whose
// media type is not application/problem+json (parameters allowed).
func TestSummarizeHAR(t *testing.T) {
	entry := func(method, url string, status int, contentType string) harEntry {
		var e harEntry
		e.Request.Method, e.Request.URL, e.Response.Status = method, url, status
		if contentType != "" {
			e.Response.Headers = append(e.Response.Headers, struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			}{"content-type", contentType})
		}
		return e
	}
	tests := []struct {
		name                   string
		entries                []harEntry
		requests, serverErrors int
		notProblem             int
	}{
		{"successes need no problem+json", []harEntry{
			entry("POST", "/orders", 201, "application/json"),
			entry("GET", "/orders/x", 200, "application/json; charset=UTF-8"),
			entry("POST", "/orders/x/cancel", 204, ""),
		}, 3, 0, 0},
		{"errors as problem+json, with or without parameters", []harEntry{
			entry("POST", "/orders", 422, "application/problem+json"),
			entry("GET", "/orders/x", 404, "application/problem+json; charset=utf-8"),
			entry("DELETE", "/orders", 405, "Application/Problem+JSON"),
		}, 3, 0, 0},
		{"an error in plain JSON or text, or without a content type", []harEntry{
			entry("POST", "/orders", 400, "application/json"),
			entry("GET", "/nowhere", 404, "text/plain; charset=utf-8"),
			entry("GET", "/orders", 413, ""),
		}, 3, 0, 3},
		{"a 5xx counts as a server error, and as not problem+json if it is not", []harEntry{
			entry("GET", "/orders/x", 503, "application/problem+json"),
			entry("GET", "/orders/y", 500, "text/html"),
		}, 2, 2, 1},
		{"a request without an answer is not counted", []harEntry{
			entry("GET", "/orders/x", 0, ""),
		}, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := summarizeHAR(tt.entries)
			if s.requests != tt.requests || s.serverErrors != tt.serverErrors || len(s.notProblem) != tt.notProblem {
				t.Errorf("requests %d, server errors %d, not problem+json %d (%v); want %d, %d, %d",
					s.requests, s.serverErrors, len(s.notProblem), s.notProblem, tt.requests, tt.serverErrors, tt.notProblem)
			}
		})
	}
}

// TestReadSchemathesisReport reads a JSON run report in Schemathesis 4.x's
// shape and splits its failures into server errors and schema violations; a
// file that is not such a report is an error, not an empty (passing) report.
func TestReadSchemathesisReport(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, v any) string {
		t.Helper()
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	path := write("report.json", map[string]any{
		"schemathesis_version": "4.32.5", "seed": json.Number("314137379831990226969234863317505024058"),
		"exit_code": 1, "complete": true,
		"operations": map[string]int{"total": 5, "selected": 5, "tested": 5},
		"phases":     map[string]any{"stateful": map[string]any{"status": "success", "skip_reason": nil}},
		"test_cases": map[string]int{"generated": 2500, "with_failures": 4},
		"failures": []map[string]any{
			{"type": "ServerError", "code": "ST101", "title": "Server error", "count": 3, "operations": []string{"POST /orders"}},
			{"type": "JsonSchemaError", "code": "ST301", "title": "Response violates schema", "count": 1, "operations": []string{"GET /orders/{id}"}},
		},
		"errors": []map[string]any{},
	})
	r, err := readSchemathesisReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.serverErrors() != 3 || r.schemaViolations() != 1 || r.Operations.Tested != 5 || r.Phases["stateful"].Status != "success" {
		t.Errorf("server errors %d, schema violations %d, tested %d, stateful %q; want 3, 1, 5, success",
			r.serverErrors(), r.schemaViolations(), r.Operations.Tested, r.Phases["stateful"].Status)
	}
	if got := r.Seed.String(); got != "314137379831990226969234863317505024058" {
		t.Errorf("seed %s", got)
	}
	if _, err := readSchemathesisReport(write("other.json", map[string]any{"log": map[string]any{}})); err == nil || !strings.Contains(err.Error(), "not a Schemathesis 4.x JSON report") {
		t.Errorf("a file that is not a report: err %v, want one", err)
	}
}
