package http_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/onceflow/onceflow/pkg/apidoc"
	"github.com/onceflow/onceflow/pkg/apidoc/apidoctest"
	"github.com/onceflow/onceflow/pkg/messaging/poison"
	orderhttp "github.com/onceflow/onceflow/services/order/internal/adapters/http"
)

// document is the order service's OpenAPI document as the service serves it
// (this adapter's, with the poison admin endpoints), loaded once.
var document = sync.OnceValues(func() (*apidoctest.Checker, error) {
	doc, err := apidoc.Build(orderhttp.OpenAPI, poison.OpenAPI)
	if err != nil {
		return nil, err
	}
	return apidoctest.Load(doc)
})

// serve runs req on api and fails t if the response (status, headers, body)
// breaks the OpenAPI document: every test of this package that talks to the
// API goes through it (ADR 0046).
func serve(t *testing.T, api http.Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	c, err := document()
	if err != nil {
		t.Fatal(err)
	}
	c.Recorded(t, req, rec)
	return rec
}
