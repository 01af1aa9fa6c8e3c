package app_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/inbox"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/retention"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/kafka"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/payment/internal/app"
)

// newService returns the payment use cases on a fresh, migrated database with
// one customer who has 10,000 cents, the service user's pool they use, and the
// test superuser's (for what only an operator does).
func newService(t *testing.T) (svc *app.Service, db, admin *sql.DB) {
	t.Helper()
	d := testenv.NewDatabase(t, testenv.PaymentDBAddr)
	d.Migrate(t, mariadb.Migrations)
	db = d.Open(t, 100) // as the service user
	if _, err := db.Exec("INSERT INTO accounts (customer_id, balance_cents, currency) VALUES ('alice', 10000, 'EUR')"); err != nil {
		t.Fatal(err)
	}
	return app.New(mariadb.NewPayments(db, outbox.New(), "payments"), slog.New(slog.DiscardHandler)), db, d.Admin
}

func placed(orderID string) events.Event { return placement(orderID, 1, 700) }

// placement is an OrderPlaced of alice's order at version, for amount EUR cents.
func placement(orderID string, version int, amount int64) events.Event {
	return events.Event{ID: watermill.NewUUID(), OrderID: orderID, OrderVersion: version, OccurredAt: time.Now(),
		Payload: events.OrderPlaced{CustomerID: "alice", Amount: events.Money{MinorUnits: amount, Currency: "EUR"}}}
}

func cancelled(orderID string, version int) events.Event {
	return events.Event{ID: watermill.NewUUID(), OrderID: orderID, OrderVersion: version, OccurredAt: time.Now(),
		Payload: events.OrderCancelled{Reason: "payment_timeout"}}
}

// deliver runs e through the Kafka inbound adapter, as the consumer does:
// encoded, decoded, turned into the payment command.
func deliver(ctx context.Context, svc *app.Service, e events.Event) error {
	msg, err := events.Encode(e)
	if err != nil {
		return err
	}
	msg.SetContext(ctx)
	return kafka.OrderEvents(svc)(msg)
}

// TestArrivalOrders feeds the payment service the order's events in different
// orders, including the "refund before charge" race (the cancellation overtakes
// the placement) and replays of old events, and checks the money.
func TestArrivalOrders(t *testing.T) {
	tests := []struct {
		name        string
		events      func(id string) []events.Event
		wantCharged int64
		wantRefund  int64
		wantEvents  []events.Type
	}{
		{"placed only", func(id string) []events.Event { return []events.Event{placed(id)} },
			700, 0, []events.Type{events.TypePaymentCompleted}},
		{"placed then cancelled: charge, then refund", func(id string) []events.Event {
			return []events.Event{placed(id), cancelled(id, 2)}
		}, 700, 700, []events.Type{events.TypePaymentCompleted, events.TypePaymentRefunded}},
		{"cancelled before placed: never charged", func(id string) []events.Event {
			return []events.Event{cancelled(id, 2), placed(id)}
		}, 0, 0, nil},
		{"old placement replayed after the refund", func(id string) []events.Event {
			p := placed(id)
			return []events.Event{p, cancelled(id, 2), p, placed(id)}
		}, 700, 700, []events.Type{events.TypePaymentCompleted, events.TypePaymentRefunded}},
		{"cancellation delivered twice", func(id string) []events.Event {
			c := cancelled(id, 2)
			return []events.Event{placed(id), c, c, cancelled(id, 2)}
		}, 700, 700, []events.Type{events.TypePaymentCompleted, events.TypePaymentRefunded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, db, _ := newService(t)
			id := watermill.NewUUID()
			for _, e := range tt.events(id) {
				if err := deliver(context.Background(), svc, e); err != nil {
					t.Fatalf("%s: %v", e.Type(), err)
				}
			}
			wantMoney(t, db, id, tt.wantCharged, tt.wantRefund)
			if got := outboxTypes(t, db); !equal(got, tt.wantEvents) {
				t.Fatalf("events emitted %v, want %v", got, tt.wantEvents)
			}
		})
	}
}

// TestPlacementOfAnOrderWithAPayment: an OrderPlaced for an order whose payment
// exists never charges. One the payment agrees with and that is not newer (a
// duplicate with a new event id) is stale: acknowledged, nothing happens. One
// that contradicts the payment, a newer version (a refunded order "placed
// again") or another amount, is a permanent error with reason code
// inconsistent_event, which the consumer poisons; nothing moves.
func TestPlacementOfAnOrderWithAPayment(t *testing.T) {
	refunded := func(id string) []events.Event { return []events.Event{placed(id), cancelled(id, 2)} }
	charged := func(id string) []events.Event { return []events.Event{placed(id)} }
	tests := []struct {
		name         string
		before       func(id string) []events.Event
		version      int
		amount       int64
		wantCode     string // "": ignored as stale
		wantCharged  int64
		wantRefunded int64
		wantEvents   []events.Type
	}{
		{"refunded order placed at a newer version", refunded, 3, 700, app.ReasonInconsistentEvent, 700, 700,
			[]events.Type{events.TypePaymentCompleted, events.TypePaymentRefunded}},
		{"charged order placed at a newer version", charged, 2, 700, app.ReasonInconsistentEvent, 700, 0,
			[]events.Type{events.TypePaymentCompleted}},
		{"charged order placed with another amount", charged, 1, 800, app.ReasonInconsistentEvent, 700, 0,
			[]events.Type{events.TypePaymentCompleted}},
		{"charged order placed again (a new event id)", charged, 1, 700, "", 700, 0,
			[]events.Type{events.TypePaymentCompleted}},
		{"refunded order placed again (a new event id)", refunded, 1, 700, "", 700, 700,
			[]events.Type{events.TypePaymentCompleted, events.TypePaymentRefunded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, db, _ := newService(t)
			id := watermill.NewUUID()
			for _, e := range tt.before(id) {
				if err := deliver(context.Background(), svc, e); err != nil {
					t.Fatalf("%s: %v", e.Type(), err)
				}
			}
			err := deliver(context.Background(), svc, placement(id, tt.version, tt.amount))
			wantMoney(t, db, id, tt.wantCharged, tt.wantRefunded)
			switch {
			case tt.wantCode == "" && err != nil:
				t.Fatalf("a stale placement: %v, want it acknowledged", err)
			case tt.wantCode != "" && (!failure.IsPermanent(err) || failure.ReasonCode(err) != tt.wantCode):
				t.Fatalf("error %v (permanent %v, reason code %q), want a permanent error with reason code %q",
					err, failure.IsPermanent(err), failure.ReasonCode(err), tt.wantCode)
			}
			if got := outboxTypes(t, db); !equal(got, tt.wantEvents) {
				t.Fatalf("events emitted %v, want %v", got, tt.wantEvents)
			}
		})
	}
}

// wantMoney checks the ledger's charges and refunds of order id, and that
// alice's balance (10,000 at first) moved by exactly them.
func wantMoney(t *testing.T, db *sql.DB, id string, wantCharged, wantRefunded int64) {
	t.Helper()
	var charged, refunded, balance int64
	if err := db.QueryRow(`SELECT COALESCE(SUM(CASE kind WHEN 'charge' THEN amount_cents END), 0),
		COALESCE(SUM(CASE kind WHEN 'refund' THEN amount_cents END), 0) FROM ledger WHERE order_id = ?`, id).
		Scan(&charged, &refunded); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT balance_cents FROM accounts WHERE customer_id = 'alice'").Scan(&balance); err != nil {
		t.Fatal(err)
	}
	if charged != wantCharged || refunded != wantRefunded || balance != 10000-charged+refunded {
		t.Fatalf("charged %d, refunded %d, balance %d; want %d, %d, %d", charged, refunded, balance,
			wantCharged, wantRefunded, 10000-wantCharged+wantRefunded)
	}
}

// outboxTypes lists the event types waiting in the outbox, oldest first.
func outboxTypes(t *testing.T, db *sql.DB) []events.Type {
	t.Helper()
	rows, err := db.Query("SELECT JSON_VALUE(payload, '$.metadata.event_type') FROM watermill_outbox ORDER BY `offset`")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var types []events.Type
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		types = append(types, events.Type(s))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return types
}

func equal(a, b []events.Type) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRefundToAVanishedAccount (integration, real MariaDB): the order was
// charged, the account was deleted, then the order is cancelled. The payment is
// REFUND_FAILED with its reason, no money moves, and PaymentRefundFailed (not
// PaymentRefunded, and not silence) goes to the outbox in the same transaction.
func TestRefundToAVanishedAccount(t *testing.T) {
	svc, db, admin := newService(t)
	id := watermill.NewUUID()
	ctx := context.Background()
	if err := deliver(ctx, svc, placed(id)); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("DELETE FROM accounts WHERE customer_id = 'alice'"); err != nil { // an operator closes the account
		t.Fatal(err)
	}
	for range 2 { // the second cancellation is a duplicate
		if err := deliver(ctx, svc, cancelled(id, 2)); err != nil {
			t.Fatal(err)
		}
	}
	var status, reason string
	var refunded int64
	if err := db.QueryRow("SELECT status, reason, refunded_cents FROM payments WHERE order_id = ?", id).
		Scan(&status, &reason, &refunded); err != nil {
		t.Fatal(err)
	}
	if status != "REFUND_FAILED" || reason != contract.ReasonAccountNotFound || refunded != 0 {
		t.Fatalf("payment %s (%q), refunded %d; want REFUND_FAILED (account_not_found), 0", status, reason, refunded)
	}
	want := []events.Type{events.TypePaymentCompleted, events.TypePaymentRefundFailed}
	if got := outboxTypes(t, db); !equal(got, want) {
		t.Fatalf("events emitted %v, want %v", got, want)
	}
	var data string
	if err := db.QueryRow("SELECT JSON_VALUE(payload, '$.payload') FROM watermill_outbox ORDER BY `offset` DESC LIMIT 1").Scan(&data); err != nil {
		t.Fatal(err)
	}
	body, err := base64.StdEncoding.DecodeString(data) // the forwarder's envelope holds the payload as bytes
	if err != nil {
		t.Fatal(err)
	}
	if data = string(body); !strings.Contains(data, `account_not_found`) || !strings.Contains(data, `"amount_cents":700`) {
		t.Fatalf("refund failure event %s, want amount 700 and reason account_not_found", data)
	}
}

// TestReplayAfterTheDedupWindow (integration, real MariaDB): a message handled
// through the inbox, whose inbox row has been pruned (retention), is
// delivered again (a poison replay weeks later). The inbox no longer knows it and
// lets it through; the payment's per-order state (it already acted on that order
// version) still ignores it: one charge, one PaymentCompleted.
func TestReplayAfterTheDedupWindow(t *testing.T) {
	svc, db, _ := newService(t)
	in, err := inbox.New(inbox.Config{DB: db, ConsumerGroup: "payment-service"})
	if err != nil {
		t.Fatal(err)
	}
	handle := in.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		return nil, kafka.OrderEvents(svc)(msg)
	})
	id := watermill.NewUUID()
	msg, err := events.Encode(placed(id))
	if err != nil {
		t.Fatal(err)
	}
	deliver := func() {
		t.Helper()
		m := msg.Copy()
		m.SetContext(context.Background())
		if _, err := handle(m); err != nil {
			t.Fatal(err)
		}
	}
	deliver()
	pruner := retention.Pruner{DB: db, Table: "processed_messages", Column: "processed_at", BatchSize: 100}
	if n, _, err := pruner.Prune(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("pruned %d inbox rows (%v), want 1", n, err)
	}
	if seen, err := in.Processed(context.Background(), msg.UUID); err != nil || seen {
		t.Fatalf("inbox still knows the message (%v, %v): the test would prove nothing", seen, err)
	}
	deliver() // after the window
	var charges int
	if err := db.QueryRow("SELECT COUNT(*) FROM ledger WHERE order_id = ? AND kind = 'charge'", id).Scan(&charges); err != nil {
		t.Fatal(err)
	}
	if got := outboxTypes(t, db); charges != 1 || !equal(got, []events.Type{events.TypePaymentCompleted}) {
		t.Fatalf("after a replay past the dedup window: %d charges, events %v; want 1 and one PaymentCompleted", charges, got)
	}
}
