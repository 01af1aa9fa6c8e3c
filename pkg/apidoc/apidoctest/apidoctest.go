// Package apidoctest keeps an OpenAPI document true in tests: it
// checks that a document is valid OpenAPI 3.1, that an Echo server's routes
// and the document's operations are the same set, and that every response a
// test receives (status, headers, body) conforms to the document. It uses
// pb33f/libopenapi-validator (full OpenAPI 3.1 / JSON Schema 2020-12) and is
// imported by tests only: no production binary links it.
package apidoctest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	vErrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/helpers"

	"github.com/onceflow/onceflow/pkg/apidoc"
)

// Checker validates responses against one document.
type Checker struct {
	v   validator.Validator
	ops map[string]bool
}

// New parses doc (JSON or YAML) and fails t unless it is a valid OpenAPI 3.1
// document (checked against the specification's schema).
func New(t testing.TB, doc []byte) *Checker {
	t.Helper()
	c, err := Load(doc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Load is New for callers without a testing.TB (a sync.OnceValues shared by
// the tests of a package): it returns what New would report.
func Load(doc []byte) (*Checker, error) {
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	if v := d.GetVersion(); !strings.HasPrefix(v, "3.1") {
		return nil, fmt.Errorf("openapi document is version %q, want 3.1", v)
	}
	v, errs := validator.NewValidator(d, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, fmt.Errorf("openapi document: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		var msgs []string
		for _, e := range verrs {
			msgs = append(msgs, e.Message+": "+e.Reason)
		}
		return nil, fmt.Errorf("openapi document invalid:\n%s", strings.Join(msgs, "\n"))
	}
	model, err := d.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("openapi model: %w", err)
	}
	ops := map[string]bool{}
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			ops[strings.ToUpper(method)+" "+path] = true
		}
	}
	return &Checker{v: v, ops: ops}, nil
}

// Once returns a function giving the Checker of the document apidoc.Build
// makes of base and fragments (what a service serves), built on first use and
// shared by every test of a package; it fails the calling test if the
// document does not build or is not valid OpenAPI 3.1.
func Once(base []byte, fragments ...[]byte) func(testing.TB) *Checker {
	load := sync.OnceValues(func() (*Checker, error) {
		doc, err := apidoc.Build(base, fragments...)
		if err != nil {
			return nil, err
		}
		return Load(doc)
	})
	return func(t testing.TB) *Checker {
		t.Helper()
		c, err := load()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
}

// Serve runs req on h and returns the recorded response after reporting
// (Response) every way it breaks the document.
func (c *Checker) Serve(t testing.TB, h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	c.Recorded(t, req, rec)
	return rec
}

// Served returns the document e serves at GET /openapi.json, failing t if it
// does not answer 200 with JSON.
func Served(t testing.TB, e *echo.Echo) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get(echo.HeaderContentType), echo.MIMEApplicationJSON) {
		t.Fatalf("GET /openapi.json: %d %s", rec.Code, rec.Header().Get(echo.HeaderContentType))
	}
	return rec.Body.Bytes()
}

// Operations returns the document's operations as "METHOD /path/{param}".
func (c *Checker) Operations() map[string]bool { return c.ops }

// Response reports (t.Errorf) every way res, the answer to req, breaks the
// document: a status the operation does not list, a missing required header
// or one that breaks its schema, a content type it does not list, a body that
// breaks its schema. It consumes and restores res.Body.
func (c *Checker) Response(t testing.TB, req *http.Request, res *http.Response) {
	t.Helper()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	check := *res
	check.Body = io.NopCloser(bytes.NewReader(body))
	if ok, errs := c.v.ValidateHttpResponse(req, &check); !ok {
		if unrouted(errs) && (res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusMethodNotAllowed) {
			// No operation to check against: the server said so too. It must
			// still answer with a problem.
			checkProblem(t, req, res, body)
			return
		}
		for _, e := range errs {
			var details []string
			for _, s := range e.SchemaValidationErrors {
				details = append(details, s.Reason+" at "+s.FieldPath)
			}
			t.Errorf("%s %s -> %d breaks the OpenAPI document: %s: %s %v\nbody: %.500s",
				req.Method, req.URL.RequestURI(), res.StatusCode, e.Message, e.Reason, details, body)
		}
	}
}

// unrouted reports whether errs only say that the document has no operation
// for the request.
func unrouted(errs []*vErrors.ValidationError) bool {
	for _, e := range errs {
		if e.ValidationType != helpers.PathValidation ||
			(e.ValidationSubType != helpers.ValidationMissing && e.ValidationSubType != helpers.ValidationMissingOperation) {
			return false
		}
	}
	return len(errs) > 0
}

// checkProblem reports a response that is not an RFC 9457 problem with the
// response's status.
func checkProblem(t testing.TB, req *http.Request, res *http.Response, body []byte) {
	t.Helper()
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
	}
	if ct := res.Header.Get(echo.HeaderContentType); ct != "application/problem+json" {
		t.Errorf("%s %s -> %d: Content-Type %q, want application/problem+json", req.Method, req.URL.RequestURI(), res.StatusCode, ct)
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Type == "" || p.Title == "" || p.Status != res.StatusCode {
		t.Errorf("%s %s -> %d: not a problem with that status: %.500s", req.Method, req.URL.RequestURI(), res.StatusCode, body)
	}
}

// Recorded validates the response an httptest.ResponseRecorder holds.
func (c *Checker) Recorded(t testing.TB, req *http.Request, rec *httptest.ResponseRecorder) {
	t.Helper()
	res := rec.Result()
	defer res.Body.Close()
	c.Response(t, req, res)
}

// Transport returns a RoundTripper (inner, or http.DefaultTransport if nil)
// that validates every response it carries.
func (c *Checker) Transport(t testing.TB, inner http.RoundTripper) http.RoundTripper {
	if inner == nil {
		inner = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		res, err := inner.RoundTrip(req)
		if err == nil {
			c.Response(t, req, res)
		}
		return res, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// CoverRoutes fails t unless the routes e serves and the document's
// operations are the same set, apart from excluded: route patterns ("GET
// /console", "* /console/payment/admin/poison/*" for every method) mapped to
// the reason they are not in the document. An excluded route that e does not
// serve fails too, so the list cannot go stale.
func CoverRoutes(t testing.TB, e *echo.Echo, c *Checker, excluded map[string]string) {
	t.Helper()
	served := map[string]bool{}
	usedExclusion := map[string]bool{}
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound { // a group's catch-all for its middleware, not a route
			continue
		}
		path := echoParam.ReplaceAllString(r.Path, "{$1}")
		op := r.Method + " " + path
		if _, ok := excluded[op]; ok {
			usedExclusion[op] = true
			continue
		}
		if _, ok := excluded["* "+path]; ok {
			usedExclusion["* "+path] = true
			continue
		}
		served[op] = true
	}
	var missing, extra []string
	for op := range served {
		if !c.ops[op] {
			missing = append(missing, op)
		}
	}
	for op := range c.ops {
		if !served[op] {
			extra = append(extra, op)
		}
	}
	for op := range excluded {
		if !usedExclusion[op] {
			extra = append(extra, op+" (excluded, but not served)")
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes the server serves but the OpenAPI document does not describe:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("operations the OpenAPI document describes but the server does not serve:\n  %s", strings.Join(extra, "\n  "))
	}
}
