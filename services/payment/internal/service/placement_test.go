package service

import (
	"database/sql"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/payment/internal/app"
)

// TestPlacementOfARefundedOrderIsPoisoned, through the service's real consumer
// (Run, Kafka, the inbox, the poison queue): an order is charged, then
// cancelled and refunded; then an OrderPlaced of that order arrives with a
// newer order version and a new event id (a buggy producer, or a replay given
// a new version), which neither the inbox nor an order-version check stops.
// The payment service poisons it with reason code inconsistent_event and
// charges nothing; the next order is charged (the consumer goes on).
func TestPlacementOfARefundedOrderIsPoisoned(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t, testenv.PaymentDBAddr)
	cfg := testConfig(t, d)
	kafkaCfg := cfg.Messaging.Kafka
	d.Migrate(t, mariadb.Migrations) // before Run, for the account
	db := d.Admin
	if _, err := db.Exec("INSERT INTO accounts (customer_id, balance_cents, currency) VALUES ('c-1', 10000, 'EUR')"); err != nil {
		t.Fatal(err)
	}
	runPayments(t, cfg)

	publish := func(e events.Event) *message.Message {
		t.Helper()
		e.ID, e.OccurredAt = watermill.NewUUID(), time.Now()
		m, err := events.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		pub := kafkaCfg.NewPublisher(watermill.NopLogger{})
		defer pub.Close()
		if err := pub.Publish(cfg.OrdersTopic, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	placed := func(order string, version int) events.Event {
		return events.Event{OrderID: order, OrderVersion: version,
			Payload: events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 250, Currency: "EUR"}}}
	}
	publish(placed("o-1", 1))
	waitCharged(t, db, "o-1")
	publish(events.Event{OrderID: "o-1", OrderVersion: 2, Payload: events.OrderCancelled{Reason: "cancelled_by_customer", Paid: true}})
	waitStatus(t, db, "o-1", "REFUNDED")

	again := publish(placed("o-1", 3))
	publish(placed("o-2", 1)) // one partition: handled after the placement above
	waitCharged(t, db, "o-2")
	poisoned := testenv.ReadTopic(t, kafkaCfg, cfg.Messaging.PoisonTopic, 1, 60*time.Second)
	if len(poisoned) != 1 || poisoned[0].UUID != again.UUID {
		t.Fatalf("poison topic: %d messages, want the placement at version 3 %s", len(poisoned), again.UUID)
	}
	if code := poisoned[0].Metadata.Get(failure.MetadataReasonCode); code != app.ReasonInconsistentEvent {
		t.Fatalf("reason_code = %q, want %q", code, app.ReasonInconsistentEvent)
	}
	var charges, balance int64
	if err := db.QueryRow("SELECT COUNT(*) FROM ledger WHERE order_id = 'o-1' AND kind = 'charge'").Scan(&charges); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT balance_cents FROM accounts WHERE customer_id = 'c-1'").Scan(&balance); err != nil {
		t.Fatal(err)
	}
	if charges != 1 || balance != 10000-250 {
		t.Fatalf("o-1 charged %d times, balance %d; want once (and refunded), balance %d (o-2's charge only)", charges, balance, 10000-250)
	}
}

// waitStatus waits until order's payment has status.
func waitStatus(t *testing.T, db *sql.DB, order, status string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var got string
		err := db.QueryRow("SELECT status FROM payments WHERE order_id = ?", order).Scan(&got)
		if err == nil && got == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment of %s is %q (%v), want %s within 60 s", order, got, err, status)
		}
	}
}
