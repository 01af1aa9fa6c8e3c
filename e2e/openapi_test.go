package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/pkg/apidoc/apidoctest"
)

// conformsToTheDocument reads the running order service's /openapi.json and
// sends, through a client that validates every answer against it (ADR 0046),
// the reads of ids (orders after a real saga: UUIDs, timelines with real
// messages), a customer's list, a refused order, an unknown order and a
// wrong method. It fails t on any answer that breaks the document.
func conformsToTheDocument(t *testing.T, s *harness.Stack, customer string, ids ...string) {
	t.Helper()
	base := "http://" + s.Orders[0].HTTPAddr
	res, err := http.Get(base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %v", res.StatusCode, err)
	}
	checker := apidoctest.New(t, doc)
	client := &http.Client{Timeout: 5 * time.Second, Transport: checker.Transport(t, nil)}
	send := func(method, path, body string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctxFor(t, 5*time.Second), method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		res.Body.Close()
	}
	for _, id := range ids {
		send(http.MethodGet, "/orders/"+id, "")
		send(http.MethodGet, "/orders/"+id+"/timeline", "")
	}
	send(http.MethodGet, "/orders?customer_id="+customer, "")
	send(http.MethodPost, "/orders", `{"customer_id":"`+customer+`","amount_cents":0,"currency":"eur"}`)
	send(http.MethodGet, "/orders/no-such-order", "")
	send(http.MethodDelete, "/orders", "")
	send(http.MethodGet, "/healthz", "")
	send(http.MethodGet, "/readyz", "")
	send(http.MethodGet, "/metrics", "")
}
