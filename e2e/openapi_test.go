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
// sends, through a client that validates every answer against it,
// the reads of ids (orders after a real saga: UUIDs, timelines with real
// messages), a customer's list, a refused order, an unknown order, a wrong
// method, and what the guard refuses: a form body (what `curl -d`
// sends), a cross-site POST and a rebound Host. It fails t on any answer that
// breaks the document, and on a refusal with another status.
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
	sendWith := func(method, path, body string, header map[string]string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(ctxFor(t, 5*time.Second), method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		if h := req.Header.Get("Host"); h != "" {
			req.Host = h
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	send := func(method, path, body string) { t.Helper(); sendWith(method, path, body, nil) }
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

	order := `{"customer_id":"` + customer + `","amount_cents":1250,"currency":"EUR"}`
	refusals := []struct {
		name   string
		method string
		path   string
		body   string
		header map[string]string
		want   int
	}{
		{"a form body, as curl -d sends it", http.MethodPost, "/orders", order,
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"a cancel from a page of another site", http.MethodPost, "/orders/" + ids[0] + "/cancel", "",
			map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, http.StatusForbidden},
		{"a customer's orders for a rebound name", http.MethodGet, "/orders?customer_id=" + customer, "",
			map[string]string{"Host": "rebound.example"}, http.StatusMisdirectedRequest},
	}
	for _, r := range refusals {
		if got := sendWith(r.method, r.path, r.body, r.header); got != r.want {
			t.Errorf("%s: %s %s answered %d, want %d", r.name, r.method, r.path, got, r.want)
		}
	}
}
