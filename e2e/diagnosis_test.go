package e2e

import (
	"cmp"
	"database/sql"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
)

// diagnosisToken is the admin token of both services: the order service asks
// the payment service's diagnosis with its own.
const diagnosisToken = "diagnosis-admin"

// flakyFor is how long the payment service fails the placement of a "flaky-"
// customer's order (from its first failure in the process).
const flakyFor = 2 * time.Second

// diagnosisView is the answer of GET /orders/{id}/diagnosis.
type diagnosisView struct {
	Status, Stage string
	Cause         *struct{ Code, Service, Detail, Remedy string }
}

// diagnosisStack starts a stack whose payment service gives up on a flaky
// customer's placement within a second (one quick retry) and handles it
// again once flakyFor has passed, with the failure strategy mode; a "down-"
// customer's placement fails as an outage for as long. env (ORDER_* for the
// order service, the rest for the payment service) comes last: it overrides.
func diagnosisStack(t *testing.T, mode string, env ...string) *harness.Stack {
	t.Helper()
	laterLane(t)
	orderEnv, paymentEnv := []string{"ORDER_ADMIN_TOKEN=" + diagnosisToken}, []string{}
	for _, e := range env {
		if strings.HasPrefix(e, "ORDER_") {
			orderEnv = append(orderEnv, e)
		} else {
			paymentEnv = append(paymentEnv, e)
		}
	}
	return newStack(t, harness.StackConfig{
		OrderEnv: orderEnv,
		PaymentEnv: append([]string{"PAYMENT_ADMIN_TOKEN=" + diagnosisToken, "PAYMENT_FAILURE_MODE=" + mode,
			"PAYMENT_FAULT_TRANSIENT_CUSTOMER_PREFIX=flaky-", "PAYMENT_FAULT_UNAVAILABLE_CUSTOMER_PREFIX=down-",
			"PAYMENT_FAULT_TRANSIENT_FOR=" + flakyFor.String(),
			"PAYMENT_RETRY_MAX_RETRIES=1", "PAYMENT_RETRY_INITIAL_INTERVAL=50ms", "PAYMENT_RETRY_MAX_INTERVAL=100ms",
			"PAYMENT_PARK_KEY_POLL_INTERVAL=200ms"}, paymentEnv...),
	}, harness.Account{CustomerID: "rich", BalanceCents: 100_000, Currency: "EUR"},
		harness.Account{CustomerID: "flaky-1", BalanceCents: 100_000, Currency: "EUR"},
		harness.Account{CustomerID: "down-1", BalanceCents: 100_000, Currency: "EUR"})
}

// diagnoseUntil asks for the order's diagnosis until its cause is code, with
// detail in its detail if given (30 s at most), and returns it.
func diagnoseUntil(t *testing.T, s *harness.Stack, id, code string, detail ...string) diagnosisView {
	t.Helper()
	var d diagnosisView
	var status int
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		d = diagnosisView{}
		status, err = s.Call(ctxFor(t, 10*time.Second), s.Orders[0], http.MethodGet, "/orders/"+id+"/diagnosis", diagnosisToken, &d)
		if err == nil && status == http.StatusOK && d.Cause != nil && d.Cause.Code == code &&
			(len(detail) == 0 || strings.Contains(d.Cause.Detail, detail[0])) {
			return d
		}
	}
	t.Fatalf("diagnosis of %s: status %d, err %v, last %+v (cause %+v); want cause %s", id, status, err, d, d.Cause, code)
	return d
}

// remedyPath is the admin endpoint a remedy names ("POST /admin/... on the
// payment service").
var remedyPath = regexp.MustCompile(`POST (/admin/\S+) on the (\w+) service`)

// applyRemedy sends the POST the diagnosis names to the service it names.
func applyRemedy(t *testing.T, s *harness.Stack, d diagnosisView) {
	t.Helper()
	m := remedyPath.FindStringSubmatch(d.Cause.Remedy)
	if m == nil {
		t.Fatalf("remedy %q names no admin endpoint", d.Cause.Remedy)
	}
	svc := s.Payments[0]
	if m[2] == "order" {
		svc = s.Orders[0]
	}
	status, err := s.Call(ctxFor(t, 10*time.Second), svc, http.MethodPost, m[1], diagnosisToken, nil)
	if err != nil || status >= 300 {
		t.Fatalf("POST %s on %s: status %d, err %v", m[1], svc.Name, status, err)
	}
}

// stackState sums up a stack's databases (the checksum of every table) and
// topics (how many messages each holds), to compare before and after a dry run.
func stackState(t *testing.T, s *harness.Stack) string {
	t.Helper()
	var b strings.Builder
	for _, db := range []*sql.DB{s.OrderDB, s.PaymentDB} {
		b.WriteString(testenv.Checksums(t, db))
	}
	for _, topic := range []string{s.Topics.Orders, s.Topics.Payments, s.Topics.OrderPoison, s.Topics.PaymentPoison} {
		msgs, err := s.ReadAll(topic)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%d ", topic, len(msgs))
	}
	return b.String()
}

// TestDiagnosis: for each cause, the test creates it, the diagnosis names it
// and its remedy, and applying the remedy makes the order terminal
// (CONFIRMED); before the replay of a poisoned message or of a parked key,
// its dry run shows the charge and its event and changes no table and no
// topic. The causes share nothing but the e2e servers and run in parallel,
// beside the fault suite, once a long lane has left them a place (laterLane).
func TestDiagnosis(t *testing.T) {
	t.Parallel()
	t.Run("payment service unreachable", func(t *testing.T) {
		t.Parallel()
		s := diagnosisStack(t, "poison")
		if _, err := s.Payments[0].Stop(); err != nil {
			t.Fatal(err)
		}
		id := place(t, s, "rich", 500, "EUR").ID
		d := diagnoseUntil(t, s, id, "payment_service_unreachable")
		if d.Stage != "awaiting_payment" || !strings.Contains(d.Cause.Remedy, "start the payment service") {
			t.Fatalf("diagnosis %+v (cause %+v): want awaiting_payment, start the payment service", d, d.Cause)
		}
		// The CLI shows the same.
		cli := exec.Command(orderBin, "diagnose", id)
		cli.Env = []string{"ORDER_HTTP_ADDR=" + s.Orders[0].HTTPAddr, "ORDER_ADMIN_TOKEN=" + diagnosisToken}
		if out, err := cli.CombinedOutput(); err != nil || !strings.Contains(string(out), "held by:  payment_service_unreachable") {
			t.Fatalf("order diagnose %s: %v\n%s", id, err, out)
		}
		if err := s.Payments[0].Start(); err != nil {
			t.Fatal(err)
		}
		if o := terminal(t, s, id)[id]; o.Status != "CONFIRMED" {
			t.Fatalf("order %+v, want CONFIRMED", o)
		}
	})
	t.Run("poisoned", func(t *testing.T) {
		t.Parallel()
		s := diagnosisStack(t, "poison")
		id := place(t, s, "flaky-1", 500, "EUR").ID
		d := diagnoseUntil(t, s, id, "poisoned")
		if d.Cause.Service != "payment" || !strings.Contains(d.Cause.Remedy, "payment poison replay ") {
			t.Fatalf("cause %+v: want the payment service's poison replay", d.Cause)
		}
		// The fault's clock started at the first failure, before the poisoning
		// was seen: it has healed flakyFor after that.
		time.Sleep(flakyFor + time.Second)

		// A dry run of the replay shows what it would change and changes nothing.
		offset := regexp.MustCompile(`replay (\d+)`).FindStringSubmatch(d.Cause.Remedy)[1]
		before := stackState(t, s)
		var dry struct {
			Result struct {
				WouldSucceed bool `json:"would_succeed"`
				Events       []struct{ Type, Key string }
				After        struct{ Status string }
			}
		}
		status, err := s.Call(ctxFor(t, 10*time.Second), s.Payments[0], http.MethodPost, "/admin/poison/"+offset+"/dry-run", diagnosisToken, &dry)
		if err != nil || status != http.StatusOK {
			t.Fatalf("dry run of offset %s: status %d, err %v", offset, status, err)
		}
		if r := dry.Result; !r.WouldSucceed || len(r.Events) != 1 || r.Events[0].Type != "payment.completed" ||
			r.Events[0].Key != id || r.After.Status != "CHARGED" {
			t.Fatalf("dry run %+v: want a charge and its payment.completed", r)
		}
		if after := stackState(t, s); after != before {
			t.Fatalf("the dry run changed the databases or topics:\nbefore %s\nafter  %s", before, after)
		}

		applyRemedy(t, s, d)
		if o := terminal(t, s, id)[id]; o.Status != "CONFIRMED" {
			t.Fatalf("order %+v, want CONFIRMED", o)
		}
	})
	t.Run("key parked", func(t *testing.T) {
		t.Parallel()
		s := diagnosisStack(t, "park-key")
		id := place(t, s, "flaky-1", 500, "EUR").ID
		d := diagnoseUntil(t, s, id, "key_parked")
		if !strings.Contains(d.Cause.Remedy, "payment poison keys replay "+id) || !strings.Contains(d.Cause.Remedy, "payment poison keys dry-run "+id) {
			t.Fatalf("cause %+v: want the payment service's key dry run and replay", d.Cause)
		}
		time.Sleep(flakyFor + time.Second) // healed, as above

		// The dry run of the key's release: its queue (the placement) would
		// charge now, and nothing changes.
		before := stackState(t, s)
		var dry struct {
			StateChange string `json:"state_change"`
			Result      struct {
				WouldSucceed bool `json:"would_succeed"`
				Ran          int
				Events       []struct{ Type, Key string }
			}
		}
		status, err := s.Call(ctxFor(t, 10*time.Second), s.Payments[0], http.MethodPost, "/admin/poison/keys/"+id+"/dry-run", diagnosisToken, &dry)
		if err != nil || status != http.StatusOK {
			t.Fatalf("dry run of key %s: status %d, err %v", id, status, err)
		}
		if r := dry.Result; !r.WouldSucceed || r.Ran != 1 || len(r.Events) != 1 || r.Events[0].Type != "payment.completed" ||
			r.Events[0].Key != id || !strings.HasSuffix(dry.StateChange, "-> CHARGED") {
			t.Fatalf("dry run %+v: want the parked placement to charge, with its payment.completed", dry)
		}
		if after := stackState(t, s); after != before {
			t.Fatalf("the dry run changed the databases or topics:\nbefore %s\nafter  %s", before, after)
		}
		applyRemedy(t, s, d)
		if o := terminal(t, s, id)[id]; o.Status != "CONFIRMED" {
			t.Fatalf("order %+v, want CONFIRMED", o)
		}
	})
	// Causes the remedy of which is to wait: the consumer gets the message
	// again by itself once the fault heals. Each cause lasts about 8 s or
	// more, so that a loaded machine still asks while it holds.
	for _, c := range []struct {
		name, mode, customer, code string
		env                        []string
		// first is how many orders are placed and ended before the one
		// diagnosed.
		first int
		// detail and remedy are what the diagnosis must say.
		detail, remedy string
		// status is the order's end ("": CONFIRMED).
		status string
	}{
		{name: "retrying in place", mode: "poison", customer: "flaky-1", code: "retrying",
			env: []string{"PAYMENT_FAULT_TRANSIENT_FOR=8s",
				"PAYMENT_RETRY_MAX_RETRIES=80", "PAYMENT_RETRY_INITIAL_INTERVAL=200ms", "PAYMENT_RETRY_MAX_INTERVAL=400ms"},
			detail: "attempts failed (reason ", remedy: "wait for the next try"},
		{name: "requeued", mode: "requeue", customer: "flaky-1", code: "requeued",
			env:    []string{"PAYMENT_REQUEUE_INITIAL_DELAY=8s", "PAYMENT_REQUEUE_MAX_DELAY=8s", "PAYMENT_REQUEUE_POLL_INTERVAL=100ms"},
			detail: "on its delayed path (requeue 1); it is due again at ", remedy: "delivers it again at "},
		{name: "consumer paused", mode: "pause", customer: "down-1", code: "consumer_paused",
			env:    []string{"PAYMENT_FAULT_TRANSIENT_FOR=8s", "PAYMENT_PAUSE_PROBE_MIN=500ms", "PAYMENT_PAUSE_PROBE_MAX=1s"},
			detail: "is paused: its database does not answer", remedy: "bring the payment service's database back"},
		// The throttle is a ticker started with the service, which keeps one
		// tick for a late message: two orders take the kept tick and the next,
		// so the third waits a whole period.
		{name: "not consumed yet", mode: "poison", customer: "rich", code: "not_consumed_yet",
			env: []string{"PAYMENT_THROTTLE_MAX_MESSAGES=1", "PAYMENT_THROTTLE_PER=10s"}, first: 2,
			detail: "and has 1 live members", remedy: "wait: the consumers take it in turn"},
		{name: "payment timeout pending", mode: "skip", customer: "flaky-1", code: "payment_timeout_pending",
			env:    []string{"ORDER_PAYMENT_TIMEOUT=20s"},
			detail: "consumed it (committed offset ", remedy: "wait: nothing else will answer; the payment timeout cancels it at ",
			status: "CANCELLED"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := diagnosisStack(t, c.mode, c.env...)
			first := make([]string, c.first)
			for i := range first {
				first[i] = place(t, s, c.customer, 500, "EUR").ID
			}
			terminal(t, s, first...)
			id := place(t, s, c.customer, 500, "EUR").ID
			d := diagnoseUntil(t, s, id, c.code, c.detail)
			if d.Cause.Service != "payment" || !strings.Contains(d.Cause.Detail, c.detail) || !strings.Contains(d.Cause.Remedy, c.remedy) {
				t.Fatalf("cause %+v: want the payment service, %q in its detail and %q in its remedy", d.Cause, c.detail, c.remedy)
			}
			want := cmp.Or(c.status, "CONFIRMED")
			if o := terminal(t, s, id)[id]; o.Status != want {
				t.Fatalf("order %+v, want %s", o, want)
			}
		})
	}
	t.Run("outbox parked", func(t *testing.T) {
		t.Parallel()
		s := diagnosisStack(t, "poison")
		// Kafka refuses the order's event for good: its topic takes no
		// message that large.
		if err := limitTopics(s.Kafka, "200", s.Topics.Orders); err != nil {
			t.Fatal(err)
		}
		id := place(t, s, "rich", 500, "EUR").ID
		d := diagnoseUntil(t, s, id, "outbox_parked")
		if d.Cause.Service != "order" || !strings.Contains(d.Cause.Detail, "message_too_large") || !strings.Contains(d.Cause.Remedy, "order poison parked replay ") {
			t.Fatalf("cause %+v: want the order service's parked row, message_too_large, and its replay", d.Cause)
		}
		// The remedy: fix the cause (the topic's limit), then the replay.
		if err := limitTopics(s.Kafka, "1048588", s.Topics.Orders); err != nil {
			t.Fatal(err)
		}
		applyRemedy(t, s, d)
		if o := terminal(t, s, id)[id]; o.Status != "CONFIRMED" {
			t.Fatalf("order %+v, want CONFIRMED", o)
		}
	})
	t.Run("consumer stopped", func(t *testing.T) {
		t.Parallel()
		s := diagnosisStack(t, "stop")
		id := place(t, s, "flaky-1", 500, "EUR").ID
		d := diagnoseUntil(t, s, id, "consumer_stopped")
		if !strings.Contains(d.Cause.Remedy, "restart the payment service") {
			t.Fatalf("cause %+v: want a restart of the payment service", d.Cause)
		}
		// The remedy: fix the cause (switch the fault off), then restart.
		p := s.Payments[0]
		if _, err := p.Stop(); err != nil {
			t.Fatal(err)
		}
		p.Env = append(p.Env, "PAYMENT_FAULT_TRANSIENT_CUSTOMER_PREFIX=")
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		if o := terminal(t, s, id)[id]; o.Status != "CONFIRMED" {
			t.Fatalf("order %+v, want CONFIRMED", o)
		}
	})
}
