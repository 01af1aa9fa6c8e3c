// Command demo runs a small fault scenario against the stack of `make run` and
// explains, as it goes, what was broken and why nothing was lost.
//
//	go run ./e2e/demo kill-kafka | duplicates | poison     (make demo SCENARIO=...)
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/go-sql-driver/mysql"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/poison"
)

const api = "http://127.0.0.1:8080"

type demo struct {
	ctx       context.Context
	infra     *harness.Infra
	kafka     kafka.Config
	orderDB   *sql.DB
	paymentDB *sql.DB
}

func main() {
	scenarios := map[string]func(*demo) error{
		"kill-kafka": (*demo).killKafka,
		"duplicates": (*demo).duplicates,
		"poison":     (*demo).poison,
	}
	if len(os.Args) != 2 || scenarios[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: demo kill-kafka | duplicates | poison   (after `make run`)")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d := &demo{ctx: ctx, infra: harness.LocalInfra(),
		kafka: kafka.Config{Brokers: []string{"127.0.0.1:9092"}, ClientID: "demo"}.Defaults()}
	var err error
	if d.orderDB, err = sql.Open("mysql", testenv.DSN("127.0.0.1:3307", "orders")); err == nil {
		d.paymentDB, err = sql.Open("mysql", testenv.DSN("127.0.0.1:3308", "payments"))
	}
	if err == nil {
		_, _, err = get(api + "/readyz")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "the local stack does not answer; start it with `make run` first:", err)
		os.Exit(1)
	}
	if err := scenarios[os.Args[1]](d); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

type order struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	CancelReason string `json:"cancel_reason"`
	Version      int    `json:"version"`
}

func get(url string) (int, []byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func place(customer string, cents int64) (order, error) {
	body := fmt.Sprintf(`{"customer_id":%q,"amount_cents":%d,"currency":"EUR"}`, customer, cents)
	resp, err := http.Post(api+"/orders", "application/json", bytes.NewBufferString(body))
	if err != nil {
		return order{}, err
	}
	defer resp.Body.Close()
	var o order
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		return o, fmt.Errorf("POST /orders: %d %s", resp.StatusCode, b)
	}
	return o, json.NewDecoder(resp.Body).Decode(&o)
}

func read(id string) (order, error) {
	_, b, err := get(api + "/orders/" + id)
	var o order
	if err == nil {
		err = json.Unmarshal(b, &o)
	}
	return o, err
}

// waitDone waits until every order left PENDING and prints them.
func waitDone(ids []string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, id := range ids {
		for {
			o, err := read(id)
			if err == nil && o.Status != "PENDING" {
				say("    %s  %-9s %s", o.ID, o.Status, o.CancelReason)
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("order %s still PENDING after %s", id, within)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func (d *demo) count(db *sql.DB, query string, args ...any) int {
	var n int
	_ = db.QueryRow(query, args...).Scan(&n)
	return n
}

func (d *demo) killKafka() error {
	say("== Kafka goes down while orders keep coming ==\n")
	say("Watch it live: open %s/console in a browser (the order outbox backlog rises, then drains).\n", api)
	say("1. kill -9 the Kafka broker: no shutdown, no flush, like a crashed machine's process.")
	if err := d.infra.Kill(harness.Kafka); err != nil {
		return err
	}
	defer func() { _ = d.infra.Start(harness.Kafka) }()
	say("2. Place 5 orders for c-1. The order service never talks to Kafka while it accepts an order:")
	say("   it writes the order row and its OrderPlaced event in ONE transaction (the transactional outbox).")
	var ids []string
	for range 5 {
		o, err := place("c-1", 990)
		if err != nil {
			return err
		}
		ids = append(ids, o.ID)
		say("    201 Created  %s  %s", o.ID, o.Status)
	}
	time.Sleep(2 * time.Second)
	say("3. Two seconds later they are still PENDING, and their events wait in the order database:")
	say("    SELECT COUNT(*) FROM watermill_outbox  →  %d", d.count(d.orderDB, "SELECT COUNT(*) FROM watermill_outbox"))
	say("   The forwarder keeps trying the oldest one; nothing is deleted until Kafka acknowledges it.")
	say("4. Start Kafka again (same data directory).")
	if err := d.infra.Start(harness.Kafka); err != nil {
		return err
	}
	say("5. The forwarder publishes the waiting events in order, the payment service charges, the orders complete:")
	if err := waitDone(ids, 60*time.Second); err != nil {
		return err
	}
	say("    outbox rows left: %d", d.count(d.orderDB, "SELECT COUNT(*) FROM watermill_outbox"))
	say("\nNothing was lost: an order was only answered 201 after its event was durable next to it.")
	say("See README \"Where each pattern lives\" and docs/adr/0002 and 0003; the fault suite does this twice under load: make e2e SCENARIO=kill-kafka")
	return nil
}

func (d *demo) duplicates() error {
	say("== The same event arrives four times ==\n")
	before := d.count(d.paymentDB, "SELECT balance_cents FROM accounts WHERE customer_id = 'c-1'")
	o, err := place("c-1", 1234)
	if err != nil {
		return err
	}
	say("1. Order %s for 12.34 EUR; c-1 had %d cents.", o.ID, before)
	if err := waitDone([]string{o.ID}, 30*time.Second); err != nil {
		return err
	}
	msgs, err := harness.ReadAll(d.kafka, events.TopicOrders)
	if err != nil {
		return err
	}
	var placed *message.Message
	for _, m := range msgs {
		if m.Metadata.Get(events.MetadataKey) == o.ID {
			placed = m
		}
	}
	if placed == nil {
		return fmt.Errorf("OrderPlaced of %s not found in the orders topic", o.ID)
	}
	say("2. Publish its OrderPlaced (id %s) to Kafka again, three times, with the same id.", placed.UUID)
	say("   That is what happens when a forwarder crashes after Kafka acknowledged an event but before it")
	say("   deleted the outbox row, or when a consumer crashes before committing its offset. Kafka allows it.")
	pub := d.kafka.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	for range 3 {
		if err := pub.Publish(events.TopicOrders, placed.Copy()); err != nil {
			return err
		}
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if lag, err := harness.ConsumerLag(d.kafka, "payment-service", events.TopicOrders); err == nil && lag == 0 {
			break
		}
	}
	say("3. The payment service has read all four copies. The ledger for the order:")
	say("    charges: %d", d.count(d.paymentDB, "SELECT COUNT(*) FROM ledger WHERE order_id = ? AND kind = 'charge'", o.ID))
	say("    c-1's balance: %d cents (was %d)", d.count(d.paymentDB, "SELECT balance_cents FROM accounts WHERE customer_id = 'c-1'"), before)
	say("    processed_messages rows for that id: %d", d.count(d.paymentDB,
		"SELECT COUNT(*) FROM processed_messages WHERE message_id = ?", placed.UUID))
	say("\nOne charge: the payment service records each message id in processed_messages in the SAME transaction")
	say("as the charge (the inbox); the copies found the id and were dropped. See docs/adr/0005.")
	return nil
}

func (d *demo) poison() error {
	say("== Bad messages among good ones ==\n")
	pub := d.kafka.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	bad := map[string]string{
		"garbage bytes":     "\x00\x01 definitely not JSON",
		"an unknown type":   `{"type":"order.teleported","schema_version":1,"order_id":"demo-1","order_version":1,"occurred_at":"2026-01-01T00:00:00Z","data":{}}`,
		"a negative amount": `{"type":"order.placed","schema_version":1,"order_id":"demo-1","order_version":1,"occurred_at":"2026-01-01T00:00:00Z","data":{"customer_id":"c-1","amount_cents":-100,"currency":"EUR"}}`,
	}
	say("1. Publish three bad messages to the orders topic, all with the key demo-1 (one partition):")
	for what, payload := range bad {
		m := message.NewMessage(watermill.NewUUID(), []byte(payload))
		m.Metadata.Set(events.MetadataKey, "demo-1")
		if err := pub.Publish(events.TopicOrders, m); err != nil {
			return err
		}
		say("    %s (id %s)", what, m.UUID)
	}
	o, err := place("c-1", 500)
	if err != nil {
		return err
	}
	say("2. Place a normal order %s; it completes:", o.ID)
	if err := waitDone([]string{o.ID}, 30*time.Second); err != nil {
		return err
	}
	time.Sleep(time.Second)
	tool := poison.New(d.kafka, events.TopicPaymentPoison, d.paymentDB)
	defer tool.Close()
	page, err := tool.List(d.ctx, poison.Query{Limit: 3})
	if err != nil {
		return err
	}
	say("3. The payment service moved each bad message to payment.poison at the first attempt (retrying")
	say("   cannot fix it), with the reason, and went on. The newest entries of `payment poison list`:")
	for _, e := range page.Entries {
		say("    offset %d  %s  %s", e.Offset, e.ID, firstLine(e.Error))
	}
	say("\nA person fixes the cause and runs `build/bin/payment poison replay <offset>`: the message goes back")
	say("to the payment consumer alone (its delayed path in the payment DB, not the shared topic) with the")
	say("same id, so replaying twice is harmless. See docs/adr/0010, 0015 and 0032.")
	return nil
}

func firstLine(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strings.SplitN(s, "\n", 2)[0]
}
