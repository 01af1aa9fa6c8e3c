package e2e

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/onceflow/onceflow/e2e/harness"
)

// receivedSpan is one span as an OTLP collector received it.
type receivedSpan struct {
	service, name         string
	traceID, id, parentID string
	// events: each event's name and attributes, "name key=value ...".
	events []string
}

func (s receivedSpan) String() string {
	return s.service + ` "` + s.name + `" trace ` + s.traceID + " span " + s.id + " parent " + s.parentID
}

// otlpReceiver is a minimal OTLP/HTTP trace collector: it decodes the
// protobuf export requests the services send to /v1/traces and keeps the spans.
type otlpReceiver struct {
	mu      sync.Mutex
	spans   []receivedSpan
	arrived chan struct{} // signalled after each export
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	var export coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(raw, &export)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range export.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				var events []string
				for _, ev := range sp.GetEvents() {
					e := ev.GetName()
					for _, kv := range ev.GetAttributes() {
						e += " " + kv.GetKey() + "=" + kv.GetValue().GetStringValue()
						if kv.GetValue().GetStringValue() == "" {
							e += strconv.FormatInt(kv.GetValue().GetIntValue(), 10)
						}
					}
					events = append(events, e)
				}
				r.spans = append(r.spans, receivedSpan{service: service, name: sp.GetName(),
					traceID: hex.EncodeToString(sp.GetTraceId()), id: hex.EncodeToString(sp.GetSpanId()),
					parentID: hex.EncodeToString(sp.GetParentSpanId()), events: events})
			}
		}
	}
	r.mu.Unlock()
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// chain looks for the order's trace: the span of POST /orders, then each hop
// as a child of the one before. It returns the spans found and, if the chain
// is not whole, which hop is missing.
func (r *otlpReceiver) chain(hops []receivedSpan) (found []receivedSpan, missing string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parent *receivedSpan
	for _, hop := range hops {
		var match *receivedSpan
		for i, sp := range r.spans {
			if sp.service != hop.service || sp.name != hop.name {
				continue
			}
			root := parent == nil && sp.parentID == ""
			if root || parent != nil && sp.traceID == parent.traceID && sp.parentID == parent.id {
				match = &r.spans[i]
				break
			}
		}
		if match == nil {
			return found, hop.service + ` "` + hop.name + `"`
		}
		found = append(found, *match)
		parent = match
	}
	return found, ""
}

// givenUp looks for a span of service named name that has an event starting
// with each of events, in a trace whose root is the order service's
// POST /orders span, and returns the path from that span up to the root.
func (r *otlpReceiver) givenUp(service, name string, events ...string) []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	byID := map[string]receivedSpan{}
	for _, sp := range r.spans {
		byID[sp.id] = sp
	}
	for _, sp := range r.spans {
		if sp.service != service || sp.name != name || !hasEvents(sp.events, events) {
			continue
		}
		path := []receivedSpan{sp}
		for cur := sp; cur.parentID != ""; {
			parent, ok := byID[cur.parentID]
			if !ok || parent.traceID != sp.traceID {
				break
			}
			path, cur = append(path, parent), parent
		}
		if root := path[len(path)-1]; root.service == "order" && root.name == "POST /orders" && root.parentID == "" {
			return path
		}
	}
	return nil
}

func hasEvents(got, want []string) bool {
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			return false
		}
	}
	return true
}

func (r *otlpReceiver) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, sp := range r.spans {
		b.WriteString("\n  " + sp.String() + " " + strings.Join(sp.events, "; "))
	}
	return b.String()
}

// TestOneTracePerOrder: with tracing on, one order's journey is one trace
// across both services, each hop a child of the one before: the order API's
// span, the order forwarder's publish (from the trace context stored in the
// outbox row), the payment consumer (from the Kafka headers), the payment
// forwarder's publish (from its own outbox row), the order consumer. The
// services are the real processes, exporting over OTLP/HTTP to a receiver in
// this test. The payment consumer giving up on a message is an
// event of its span, in the trace of the order that sent it.
func TestOneTracePerOrder(t *testing.T) {
	recv := &otlpReceiver{arrived: make(chan struct{}, 1)}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	// OTEL_BSP_SCHEDULE_DELAY: the SDK's batch is sent every 100 ms instead of 5 s.
	env := func(prefix string) []string {
		return []string{prefix + "TRACING_EXPORTER=otlp", prefix + "TRACING_ENDPOINT=" + collector.URL, "OTEL_BSP_SCHEDULE_DELAY=100"}
	}
	// PAYMENT_FAULT_PERMANENT_CUSTOMER_PREFIX: the payment of customer "bad" fails, permanently.
	s := newStack(t, harness.StackConfig{OrderEnv: env("ORDER_"), PaymentEnv: append(env("PAYMENT_"), "PAYMENT_FAULT_PERMANENT_CUSTOMER_PREFIX=bad")},
		harness.Account{CustomerID: "rich", BalanceCents: 100_000, Currency: "EUR"})
	id := place(t, s, "rich", 1250, "EUR").ID
	if o := terminal(t, s, id)[id]; o.Status != "CONFIRMED" {
		t.Fatalf("order is %s, want CONFIRMED", o.Status)
	}

	hops := []receivedSpan{
		{service: "order", name: "POST /orders"},
		{service: "order", name: "publish " + s.Topics.Orders},
		{service: "payment", name: "process payment.order-events"},
		{service: "payment", name: "publish " + s.Topics.Payments},
		{service: "order", name: "process order.payment-events"},
	}
	// The order is confirmed, so every span has ended; the exporters send them
	// within their batch delay. Wait for exports until the chain is whole.
	deadline := time.After(30 * time.Second)
	for {
		found, missing := recv.chain(hops)
		if missing == "" {
			for _, sp := range found {
				t.Logf("%s", sp)
			}
			break
		}
		select {
		case <-recv.arrived:
		case <-deadline:
			t.Fatalf("no single trace from POST /orders to the order consumer: found %d hop(s) %v, missing %s; received:%s",
				len(found), found, missing, recv.dump())
		}
	}

	place(t, s, "bad", 1250, "EUR") // its payment is poisoned after one attempt (a permanent error is not retried)
	deadline = time.After(30 * time.Second)
	for {
		path := recv.givenUp("payment", "process payment.order-events",
			"attempt failed onceflow.attempt=1 onceflow.reason_code=injected_fault", "poisoned onceflow.reason_code=injected_fault")
		if path != nil {
			t.Logf("%s %v", path[0], path[0].events)
			return
		}
		select {
		case <-recv.arrived:
		case <-deadline:
			t.Fatalf("no payment consumer span with the failed attempt and the poisoning in an order's trace; received:%s", recv.dump())
		}
	}
}
