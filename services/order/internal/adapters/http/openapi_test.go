package http_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/onceflow/onceflow/pkg/apidoc/apidoctest"
	"github.com/onceflow/onceflow/pkg/diagnose"
	"github.com/onceflow/onceflow/pkg/httpserver"
	"github.com/onceflow/onceflow/pkg/poison/poisonhttp"
	"github.com/onceflow/onceflow/pkg/problem"
	orderhttp "github.com/onceflow/onceflow/services/order/internal/adapters/http"
)

// document is the order service's OpenAPI document as the service serves it:
// this adapter's, with the poison admin endpoints.
var document = apidoctest.Once(orderhttp.OpenAPI, problem.OpenAPI, httpserver.OpenAPI, poisonhttp.OpenAPI, diagnose.OpenAPI)

// serve runs req on api and fails t if the response (status, headers, body)
// breaks the OpenAPI document: every test of this package that talks to the
// API goes through it.
func serve(t *testing.T, api http.Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	return document(t).Serve(t, api, req)
}
