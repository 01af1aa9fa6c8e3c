package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/pkg/events"
)

func cancelOrder(t *testing.T, s *harness.Stack, id string) harness.OrderView {
	t.Helper()
	status, o, err := s.CancelOrder(ctxFor(t, 10*time.Second), id)
	if err != nil || status != http.StatusOK {
		t.Fatalf("POST /orders/%s/cancel: status %d, err %v", id, status, err)
	}
	return o
}

// netCharge is charges minus refunds for an order, from the payment ledger.
func netCharge(t *testing.T, s *harness.Stack, id string) (charged, refunded int64) {
	t.Helper()
	if err := s.PaymentDB.QueryRow(`SELECT COALESCE(SUM(CASE kind WHEN 'charge' THEN amount_cents END), 0),
		COALESCE(SUM(CASE kind WHEN 'refund' THEN amount_cents END), 0) FROM ledger WHERE order_id = ?`, id).
		Scan(&charged, &refunded); err != nil {
		t.Fatal(err)
	}
	return charged, refunded
}

// eventCounts reads a topic and counts, per order, the events of a type.
func eventCounts(t *testing.T, s *harness.Stack, topic string, typ events.Type) map[string]int {
	t.Helper()
	msgs, err := s.ReadAll(topic)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, m := range msgs {
		if m.Metadata.Get(events.MetadataType) == string(typ) {
			n[m.Metadata.Get(events.MetadataKey)]++
		}
	}
	return n
}

// TestCancelConfirmedOrderRefunds: a paid order is cancelled, the payment service
// refunds (the compensation), the order ends CANCELLED and refunded; a second
// cancellation changes nothing; an old PaymentCompleted replayed afterwards (with
// a new id) is recognised as stale by the order-version check and ignored, not
// applied and not poisoned. The order service's inbox is switched off, so the
// version check alone decides.
func TestCancelConfirmedOrderRefunds(t *testing.T) {
	s := newStack(t, harness.StackConfig{OrderEnv: []string{"ORDER_FAULT_DISABLE_INBOX=1"}},
		harness.Account{CustomerID: "rich", BalanceCents: 100_000, Currency: "EUR"})
	id := place(t, s, "rich", 700, "EUR").ID
	if o := terminal(t, s, id)[id]; o.Status != "CONFIRMED" {
		t.Fatalf("order is %s, want CONFIRMED", o.Status)
	}
	if o := cancelOrder(t, s, id); o.Status != "CANCELLED" || o.CancelReason != "cancelled_by_customer" || !o.Paid {
		t.Fatalf("after cancel: %+v, want CANCELLED by the customer, paid", o)
	}
	o := terminal(t, s, id)[id]
	if !o.Refunded || o.Version != 4 {
		t.Fatalf("order %+v, want refunded at version 4 (placed, confirmed, cancelled, refunded)", o)
	}
	if charged, refunded := netCharge(t, s, id); charged != 700 || refunded != 700 {
		t.Fatalf("ledger: charged %d, refunded %d; want 700 and 700", charged, refunded)
	}
	if b := balance(t, s, "rich"); b != 100_000 {
		t.Fatalf("balance %d, want 100000 (all paid back)", b)
	}

	again := cancelOrder(t, s, id)
	if again.Version != 4 || again.Status != "CANCELLED" {
		t.Fatalf("second cancel changed the order: %+v", again)
	}
	// Replay the old PaymentCompleted (version 1): stale for an order at version 4.
	pub := s.Kafka.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	msgs, err := s.ReadAll(s.Topics.Payments)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Metadata.Get(events.MetadataKey) == id && m.Metadata.Get(events.MetadataType) == string(events.TypePaymentCompleted) {
			stale := m.Copy()
			stale.UUID = watermill.NewUUID() // a new id: only the version check can catch it
			if err := pub.Publish(s.Topics.Payments, stale); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.WaitDrained(ctxFor(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, o, _ := s.GetOrder(ctxFor(t, 5*time.Second), id); o.Status != "CANCELLED" || o.Version != 4 {
		t.Fatalf("after a stale PaymentCompleted the order is %s v%d, want CANCELLED v4", o.Status, o.Version)
	}
	// Consumed and committed (drained): had it been poisoned, that happened first.
	if n := testenv.TopicSize(t, s.Kafka, s.Topics.OrderPoison); n != 0 {
		t.Fatalf("the stale PaymentCompleted was poisoned (%d message(s) in %s), want it ignored", n, s.Topics.OrderPoison)
	}
	if n := eventCounts(t, s, s.Topics.Orders, events.TypeOrderCancelled)[id]; n != 1 {
		t.Fatalf("%d OrderCancelled events, want 1 (cancelling twice is a no-op)", n)
	}
}

// TestCancelPendingOrder: the payment service is down while a pending order is
// cancelled; when it comes back it sees OrderPlaced, charges, then sees
// OrderCancelled and refunds (the compensation), and the order learns of the
// refund: CANCELLED, paid and refunded, nothing charged in the end.
func TestCancelPendingOrder(t *testing.T) {
	s := newStack(t, harness.StackConfig{}, harness.Account{CustomerID: "rich", BalanceCents: 100_000, Currency: "EUR"})
	if err := s.Payments[0].Kill(); err != nil {
		t.Fatal(err)
	}
	id := place(t, s, "rich", 500, "EUR").ID
	if o := cancelOrder(t, s, id); o.Status != "CANCELLED" || o.Version != 2 || o.Paid {
		t.Fatalf("after cancel: %+v, want CANCELLED v2, not paid", o)
	}
	if err := s.Payments[0].Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitDrained(ctxFor(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, o, err := s.GetOrder(ctxFor(t, 5*time.Second), id); err != nil || o.Status != "CANCELLED" || !o.Paid || !o.Refunded || o.Version != 3 {
		t.Fatalf("order %+v (%v), want CANCELLED v3, paid and refunded", o, err)
	}
	if charged, refunded := netCharge(t, s, id); charged != 500 || refunded != 500 {
		t.Fatalf("ledger: charged %d, refunded %d; want 500 and 500", charged, refunded)
	}
	if b := balance(t, s, "rich"); b != 100_000 {
		t.Fatalf("balance %d, want 100000", b)
	}
}

// TestRefundToAVanishedAccount: a confirmed order's account is deleted, then the
// order is cancelled. The payment service cannot refund; instead of marking it
// refunded in silence it emits PaymentRefundFailed, and the order shows the
// failure: CANCELLED, paid, not refunded, refund_failure account_not_found;
// its diagnosis names the failed refund and says to refund by hand.
func TestRefundToAVanishedAccount(t *testing.T) {
	s := newStack(t, harness.StackConfig{OrderEnv: []string{"ORDER_ADMIN_TOKEN=" + diagnosisToken}},
		harness.Account{CustomerID: "leaver", BalanceCents: 100_000, Currency: "EUR"})
	id := place(t, s, "leaver", 800, "EUR").ID
	if o := terminal(t, s, id)[id]; o.Status != "CONFIRMED" {
		t.Fatalf("order is %s, want CONFIRMED", o.Status)
	}
	if _, err := s.PaymentDB.Exec("DELETE FROM accounts WHERE customer_id = 'leaver'"); err != nil {
		t.Fatal(err)
	}
	cancelOrder(t, s, id)
	if err := s.WaitDrained(ctxFor(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	_, o, err := s.GetOrder(ctxFor(t, 5*time.Second), id)
	if err != nil || o.Status != "CANCELLED" || !o.Paid || o.Refunded || o.RefundFailure != contract.ReasonAccountNotFound || o.Version != 4 {
		t.Fatalf("order %+v (%v), want CANCELLED v4, paid, not refunded, refund_failure account_not_found", o, err)
	}
	if n := eventCounts(t, s, s.Topics.Payments, events.TypePaymentRefundFailed)[id]; n != 1 {
		t.Fatalf("%d PaymentRefundFailed events for the order, want 1", n)
	}
	if charged, refunded := netCharge(t, s, id); charged != 800 || refunded != 0 {
		t.Fatalf("ledger: charged %d, refunded %d; want 800 and 0 (nothing moved)", charged, refunded)
	}
	if d := diagnoseUntil(t, s, id, "refund_failed"); d.Stage != "done" || !strings.Contains(d.Cause.Remedy, "refund the customer by hand") {
		t.Fatalf("diagnosis %+v (cause %+v): want done, refund the customer by hand", d, d.Cause)
	}
}

// TestPaymentTimeoutFiresOnce: with the payment service down, orders wait past
// the payment timeout; two order replicas scan for them, and each order is
// cancelled exactly once.
func TestPaymentTimeoutFiresOnce(t *testing.T) {
	// Many orders and a fast scan, so that both replicas' scans overlap.
	env := []string{"ORDER_PAYMENT_TIMEOUT=2s", "ORDER_TIMEOUT_SCAN_INTERVAL=10ms"}
	s := newStack(t, harness.StackConfig{OrderReplicas: 2, OrderEnv: env},
		harness.Account{CustomerID: "rich", BalanceCents: 100_000, Currency: "EUR"})
	if err := s.Payments[0].Kill(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 150 {
		status, o, err := s.PlaceOrder(ctxFor(t, 5*time.Second), i, "rich", 100, "EUR")
		if err != nil || status != http.StatusCreated {
			t.Fatalf("place: %d %v", status, err)
		}
		ids = append(ids, o.ID)
	}
	views, pending := s.WaitTerminal(ctxFor(t, 30*time.Second), ids, 20*time.Second)
	if len(pending) > 0 {
		t.Fatalf("%d orders not cancelled by the timeout", len(pending))
	}
	if err := s.Payments[0].Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitDrained(ctxFor(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	cancellations := eventCounts(t, s, s.Topics.Orders, events.TypeOrderCancelled)
	for _, id := range ids {
		if o := views[id]; o.Status != "CANCELLED" || o.CancelReason != "payment_timeout" || o.Version != 2 {
			t.Fatalf("order %s: %+v, want CANCELLED by payment_timeout at version 2", id, o)
		}
		if n := cancellations[id]; n != 1 {
			t.Fatalf("order %s has %d OrderCancelled events, want exactly 1 with two replicas scanning", id, n)
		}
		if charged, refunded := netCharge(t, s, id); charged != refunded {
			t.Fatalf("order %s: charged %d, refunded %d", id, charged, refunded)
		}
	}
}

type timelineEntry struct {
	Topic            string `json:"topic"`
	EventID          string `json:"event_id"`
	Type             string `json:"type"`
	CorrelationID    string `json:"correlation_id"`
	CausedBy         string `json:"caused_by"`
	CausedByAttempts int    `json:"caused_by_attempts"`
	Retries          int    `json:"retries"`
	Poisoned         *struct {
		ReasonCode string `json:"reason_code"`
		Reason     string `json:"reason"` // must never be there: the text is admin-only
		FromTopic  string `json:"from_topic"`
	} `json:"poisoned"`
	ReplayedAt string `json:"replayed_at"`
}

// timeline reads GET /orders/{id}/timeline until it has at least n entries.
func timeline(t *testing.T, s *harness.Stack, id string, n int) []timelineEntry {
	t.Helper()
	var out struct {
		Entries []timelineEntry `json:"entries"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, err := s.Call(ctxFor(t, 5*time.Second), s.Orders[0], http.MethodGet, "/orders/"+id+"/timeline", "", &out)
		if err != nil || status != http.StatusOK {
			t.Fatalf("timeline: %d %v", status, err)
		}
		if len(out.Entries) >= n || time.Now().After(deadline) {
			return out.Entries
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// failCharges installs a trigger in the payment database that makes charging
// customer fail: the first `times` attempts (a counter in a non-transactional
// table survives the rollback), or always with times < 0. It returns a func
// that removes it.
func failCharges(t *testing.T, s *harness.Stack, customer string, times int) func() {
	t.Helper()
	stmts := []string{
		"CREATE TABLE fault_counter (n INT NOT NULL) ENGINE=MyISAM",
		"INSERT INTO fault_counter VALUES (0)",
		`CREATE TRIGGER fault_charge BEFORE INSERT ON ledger FOR EACH ROW
		 BEGIN
		   IF NEW.customer_id = '` + customer + `' AND (` + strconv.Itoa(times) + ` < 0 OR (SELECT n FROM fault_counter) < ` + strconv.Itoa(times) + `) THEN
		     UPDATE fault_counter SET n = n + 1;
		     SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected fault: charging is broken';
		   END IF;
		 END`,
	}
	for _, q := range stmts {
		if _, err := s.PaymentDB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return func() {
		for _, q := range []string{"DROP TRIGGER IF EXISTS fault_charge", "DROP TABLE IF EXISTS fault_counter"} {
			if _, err := s.PaymentDB.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
}

// TestRetriesShowInTheTimeline: charging fails twice, then succeeds: the order
// completes once, and its timeline shows the OrderPlaced that needed 2 retries
// and the PaymentCompleted it caused, with the request's correlation id.
func TestRetriesShowInTheTimeline(t *testing.T) {
	s := newStack(t, harness.StackConfig{}, harness.Account{CustomerID: "flaky", BalanceCents: 100_000, Currency: "EUR"})
	defer failCharges(t, s, "flaky", 2)()
	id := place(t, s, "flaky", 300, "EUR").ID
	if o := terminal(t, s, id)[id]; o.Status != "CONFIRMED" {
		t.Fatalf("order is %s, want CONFIRMED", o.Status)
	}
	if charged, _ := netCharge(t, s, id); charged != 300 {
		t.Fatalf("charged %d, want 300 once", charged)
	}
	entries := timeline(t, s, id, 2)
	if len(entries) != 2 || entries[0].Type != string(events.TypeOrderPlaced) || entries[1].Type != string(events.TypePaymentCompleted) {
		t.Fatalf("timeline %+v, want OrderPlaced then PaymentCompleted", entries)
	}
	if entries[0].Retries != 2 || entries[1].CausedBy != entries[0].EventID || entries[1].CausedByAttempts != 3 {
		t.Fatalf("timeline %+v: want OrderPlaced with 2 retries, and PaymentCompleted caused by it after 3 attempts", entries)
	}
	if entries[0].CorrelationID == "" || entries[0].CorrelationID != entries[1].CorrelationID {
		t.Fatalf("correlation ids %q and %q, want the same, non-empty", entries[0].CorrelationID, entries[1].CorrelationID)
	}
}

// TestPoisonReplayCompletesOnce: charging is broken for good, so the payment
// service poisons the OrderPlaced after its retries; an operator fixes the cause
// and replays it through the admin endpoint; the order completes, and replaying
// it again charges nothing more: the replay keeps the message id, and the inbox
// absorbs the second one (the order-version check, which would also drop it, is
// switched off). A replay goes to the payment consumer's delayed path, not to
// the orders topic: the poison list records both replays, and the
// timeline shows the placement, its poisoning and the one payment.
func TestPoisonReplayCompletesOnce(t *testing.T) {
	const token = "test-admin-token"
	s := newStack(t, harness.StackConfig{PaymentEnv: []string{"PAYMENT_ADMIN_TOKEN=" + token, "PAYMENT_FAULT_DISABLE_VERSION_CHECK=1"}},
		harness.Account{CustomerID: "jinx", BalanceCents: 100_000, Currency: "EUR"})
	repair := failCharges(t, s, "jinx", -1)
	id := place(t, s, "jinx", 400, "EUR").ID

	type list struct {
		Messages []struct {
			Offset     int64    `json:"offset"`
			ID         string   `json:"id"`
			Reason     string   `json:"reason"`
			ReasonCode string   `json:"reason_code"`
			FromTopic  string   `json:"from_topic"`
			OrderID    string   `json:"order_id"`
			Replays    []string `json:"replays"`
		} `json:"messages"`
	}
	var l list
	deadline := time.Now().Add(30 * time.Second)
	for len(l.Messages) == 0 && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		if status, err := s.Call(ctxFor(t, 10*time.Second), s.Payments[0], http.MethodGet, "/admin/poison", token, &l); err != nil || status != 200 {
			t.Fatalf("list poison: %d %v", status, err)
		}
	}
	if len(l.Messages) != 1 || l.Messages[0].OrderID != id || !strings.Contains(l.Messages[0].Reason, "injected fault") ||
		l.Messages[0].ReasonCode != "handler_failed" || l.Messages[0].FromTopic != s.Topics.Orders {
		t.Fatalf("poison topic: %+v, want the OrderPlaced of %s with the injected reason", l.Messages, id)
	}
	if status, _ := s.Call(ctxFor(t, 5*time.Second), s.Payments[0], http.MethodGet, "/admin/poison", "wrong", nil); status != http.StatusUnauthorized {
		t.Fatalf("admin list with a wrong token: %d, want 401", status)
	}

	repair()
	path := "/admin/poison/" + strconv.FormatInt(l.Messages[0].Offset, 10) + "/replay"
	for range 2 { // the second replay must be absorbed by the inbox
		if status, err := s.Call(ctxFor(t, 10*time.Second), s.Payments[0], http.MethodPost, path, token, nil); err != nil || status != 200 {
			t.Fatalf("replay: %d %v", status, err)
		}
	}
	if o := terminal(t, s, id)[id]; o.Status != "CONFIRMED" {
		t.Fatalf("order after replay is %s, want CONFIRMED", o.Status)
	}
	if err := s.WaitDrained(ctxFor(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	if charged, _ := netCharge(t, s, id); charged != 400 {
		t.Fatalf("charged %d after two replays, want 400 once", charged)
	}

	if status, err := s.Call(ctxFor(t, 10*time.Second), s.Payments[0], http.MethodGet, "/admin/poison", token, &l); err != nil || status != 200 ||
		len(l.Messages) != 1 || len(l.Messages[0].Replays) != 2 {
		t.Fatalf("poison list after two replays: %d %v %+v, want the message with 2 replays", status, err, l.Messages)
	}

	entries := timeline(t, s, id, 3)
	var kinds []string
	for _, e := range entries {
		switch {
		case e.Poisoned != nil:
			kinds = append(kinds, "poisoned:"+e.Type)
			// The public timeline shows the code, never the error text (which the
			// admin endpoint above showed).
			if e.Poisoned.ReasonCode != "handler_failed" || e.Poisoned.Reason != "" {
				t.Errorf("timeline poisoned = %+v, want reason_code handler_failed and no reason text", *e.Poisoned)
			}
		case e.ReplayedAt != "":
			kinds = append(kinds, "replayed:"+e.Type)
		default:
			kinds = append(kinds, e.Type)
		}
	}
	// The replays went to the payment consumer's delayed path, not through the
	// orders topic: the timeline shows their effect, the payment.
	if got := strings.Join(kinds, " "); got != "order.placed poisoned:order.placed payment.completed" {
		t.Fatalf("timeline %v: want the placement, its poisoning and one payment", kinds)
	}
}
