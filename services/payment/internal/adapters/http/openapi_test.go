package http_test

import (
	"github.com/onceflow/onceflow/pkg/apidoc/apidoctest"
	"github.com/onceflow/onceflow/pkg/diagnose"
	"github.com/onceflow/onceflow/pkg/httpserver"
	"github.com/onceflow/onceflow/pkg/poison/poisonhttp"
	"github.com/onceflow/onceflow/pkg/problem"
	paymenthttp "github.com/onceflow/onceflow/services/payment/internal/adapters/http"
)

// document is the payment service's OpenAPI document as the service serves
// it: this adapter's, with the poison admin endpoints. The tests of this
// package send their requests through document(t).Serve, which validates
// every response against it.
var document = apidoctest.Once(paymenthttp.OpenAPI, problem.OpenAPI, httpserver.OpenAPI, poisonhttp.OpenAPI, diagnose.OpenAPI)
