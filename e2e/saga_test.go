package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
)

// place posts an order and fails the test unless it is accepted.
func place(t *testing.T, s *harness.Stack, customer string, amount int64, currency string) harness.OrderView {
	t.Helper()
	status, o, err := s.PlaceOrder(ctxFor(t, 10*time.Second), 0, customer, amount, currency)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("POST /orders for %s: status %d, err %v", customer, status, err)
	}
	return o
}

// terminal waits until the orders reach their end state and returns them.
func terminal(t *testing.T, s *harness.Stack, ids ...string) map[string]harness.OrderView {
	t.Helper()
	views, pending := s.WaitTerminal(ctxFor(t, 90*time.Second), ids, 60*time.Second)
	if len(pending) > 0 {
		t.Fatalf("%d order(s) not in a terminal state after 60 s: %v (last seen %+v)", len(pending), pending, views[pending[0]])
	}
	return views
}

// ledger returns the number of charges and the sum charged for an order.
func ledger(t *testing.T, s *harness.Stack, orderID string) (charges int, cents int64) {
	t.Helper()
	err := s.PaymentDB.QueryRow(`SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM ledger
		WHERE order_id = ? AND kind = 'charge'`, orderID).Scan(&charges, &cents)
	if err != nil {
		t.Fatal(err)
	}
	return charges, cents
}

func balance(t *testing.T, s *harness.Stack, customer string) int64 {
	t.Helper()
	var b int64
	if err := s.PaymentDB.QueryRow("SELECT balance_cents FROM accounts WHERE customer_id = ?", customer).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSagaOutcomes: the forward path of the saga for each kind of customer.
func TestSagaOutcomes(t *testing.T) {
	s := newStack(t, harness.StackConfig{},
		harness.Account{CustomerID: "rich", BalanceCents: 100_000, Currency: "EUR"},
		harness.Account{CustomerID: "poor", BalanceCents: 100, Currency: "EUR"},
		harness.Account{CustomerID: "dollars", BalanceCents: 100_000, Currency: "USD"},
	)
	tests := []struct {
		name        string
		customer    string
		wantStatus  string
		wantReason  string
		wantCharged int64
	}{
		{"customer who can pay", "rich", "CONFIRMED", "", 1250},
		{"insufficient funds", "poor", "CANCELLED", "payment_failed: insufficient_funds", 0},
		{"unknown customer", "nobody", "CANCELLED", "payment_failed: unknown_customer", 0},
		{"account in another currency", "dollars", "CANCELLED", "payment_failed: currency_mismatch", 0},
	}
	ids := make([]string, len(tests))
	for i, tt := range tests {
		ids[i] = place(t, s, tt.customer, 1250, "EUR").ID
	}
	views := terminal(t, s, ids...)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := views[ids[i]]
			if o.Status != tt.wantStatus || o.CancelReason != tt.wantReason {
				t.Fatalf("order is %s (%q), want %s (%q)", o.Status, o.CancelReason, tt.wantStatus, tt.wantReason)
			}
			if _, charged := ledger(t, s, ids[i]); charged != tt.wantCharged {
				t.Fatalf("charged %d cents, want %d", charged, tt.wantCharged)
			}
		})
	}
	if b := balance(t, s, "rich"); b != 100_000-1250 {
		t.Errorf("rich's balance = %d, want %d", b, 100_000-1250)
	}
	if b := balance(t, s, "poor"); b != 100 {
		t.Errorf("poor's balance = %d, want 100 (untouched)", b)
	}
	conformsToTheDocument(t, s, "rich", ids...)
}

// orderPlacedMessage finds the OrderPlaced message of an order in the orders topic.
func orderPlacedMessage(t *testing.T, s *harness.Stack, orderID string) *message.Message {
	t.Helper()
	for _, m := range testenv.ReadTopic(t, s.Kafka, s.Topics.Orders, 1000, 5*time.Second) {
		if m.Metadata.Get(events.MetadataKey) == orderID && m.Metadata.Get(events.MetadataType) == string(events.TypeOrderPlaced) {
			return m
		}
	}
	t.Fatalf("no OrderPlaced for %s in %s", orderID, s.Topics.Orders)
	return nil
}

// TestRedeliveredEventChargesOnce publishes an order's OrderPlaced again, three
// times, with the same id (what a forwarder crash or a consumer rebalance does):
// the customer is charged once. It proves the payment service's inbox: the
// order-version check, which would also drop a second OrderPlaced, is switched
// off, so the inbox alone stands between a redelivery and a second charge.
func TestRedeliveredEventChargesOnce(t *testing.T) {
	s := newStack(t, harness.StackConfig{PaymentEnv: []string{"PAYMENT_FAULT_DISABLE_VERSION_CHECK=1"}},
		harness.Account{CustomerID: "rich", BalanceCents: 100_000, Currency: "EUR"})
	id := place(t, s, "rich", 700, "EUR").ID
	terminal(t, s, id)

	original := orderPlacedMessage(t, s, id)
	pub := s.Kafka.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	for range 3 {
		dup := original.Copy() // same UUID, payload and metadata
		if err := pub.Publish(s.Topics.Orders, dup); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WaitDrained(ctxFor(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	if charges, cents := ledger(t, s, id); charges != 1 || cents != 700 {
		t.Fatalf("after 3 redeliveries: %d charge(s), %d cents; want 1 charge of 700", charges, cents)
	}
	if b := balance(t, s, "rich"); b != 100_000-700 {
		t.Fatalf("balance = %d, want %d", b, 100_000-700)
	}
}

// TestBadEventsArePoisoned injects a malformed message, an unknown event type and
// an event that breaks the contract into the orders topic: each lands in the
// payment service's poison topic with its reason, and the next order completes.
func TestBadEventsArePoisoned(t *testing.T) {
	s := newStack(t, harness.StackConfig{}, harness.Account{CustomerID: "rich", BalanceCents: 100_000, Currency: "EUR"})
	bad := []struct {
		payload, wantReason string
	}{
		{"\x00\x01 not json", "malformed event"},
		{`{"type":"order.shipped","schema_version":1,"order_id":"o-9","order_version":1,"occurred_at":"2026-01-01T00:00:00Z","data":{}}`,
			"unknown event type"},
		{`{"type":"order.placed","schema_version":1,"order_id":"o-9","order_version":1,"occurred_at":"2026-01-01T00:00:00Z","data":{"customer_id":"rich","amount_cents":-5,"currency":"EUR"}}`,
			"invalid event"},
	}
	pub := s.Kafka.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	ids := map[string]string{}
	for _, b := range bad {
		m := message.NewMessage(watermill.NewUUID(), []byte(b.payload))
		m.Metadata.Set(events.MetadataKey, "o-9")
		ids[m.UUID] = b.wantReason
		if err := pub.Publish(s.Topics.Orders, m); err != nil {
			t.Fatal(err)
		}
	}
	id := place(t, s, "rich", 100, "EUR").ID
	if o := terminal(t, s, id)[id]; o.Status != "CONFIRMED" {
		t.Fatalf("order after the bad events is %s, want CONFIRMED", o.Status)
	}
	poisoned := testenv.ReadTopic(t, s.Kafka, s.Topics.PaymentPoison, len(bad), 30*time.Second)
	if len(poisoned) != len(bad) {
		t.Fatalf("%d message(s) in %s, want %d", len(poisoned), s.Topics.PaymentPoison, len(bad))
	}
	for _, p := range poisoned {
		want, ok := ids[p.UUID]
		reason := p.Metadata.Get(middleware.ReasonForPoisonedKey)
		if !ok || !strings.Contains(reason, want) || p.Metadata.Get(middleware.PoisonedTopicKey) != s.Topics.Orders {
			t.Errorf("poisoned %s: reason %q, topic %q; want reason with %q from %s", p.UUID, reason,
				p.Metadata.Get(middleware.PoisonedTopicKey), want, s.Topics.Orders)
		}
	}
}

// TestOrdersAcceptedWhileKafkaIsDown kills the broker, places orders (all must be
// accepted: intake never depends on Kafka), starts the broker again and checks
// that every order completes.
func TestOrdersAcceptedWhileKafkaIsDown(t *testing.T) {
	s := newStack(t, harness.StackConfig{}, harness.Account{CustomerID: "rich", BalanceCents: 1_000_000, Currency: "EUR"})
	restartKafka := killKafka(t)
	var ids []string
	for range 20 {
		ids = append(ids, place(t, s, "rich", 100, "EUR").ID)
	}
	// Every order is stored and its OrderPlaced waits in the outbox: nothing was
	// lost and nothing could have gone further.
	var waiting int
	if err := s.OrderDB.QueryRow("SELECT COUNT(*) FROM watermill_outbox").Scan(&waiting); err != nil || waiting != len(ids) {
		t.Fatalf("with Kafka down the outbox holds %d event(s) (%v), want %d", waiting, err, len(ids))
	}
	if _, o, err := s.GetOrder(ctxFor(t, 5*time.Second), ids[0]); err != nil || o.Status != "PENDING" {
		t.Fatalf("with Kafka down the first order is %q (%v), want PENDING", o.Status, err)
	}
	restartKafka()
	for id, o := range terminal(t, s, ids...) {
		if o.Status != "CONFIRMED" {
			t.Errorf("order %s is %s, want CONFIRMED", id, o.Status)
		}
	}
}
