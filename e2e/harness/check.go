package harness

import (
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/messaging"
)

// Fault is one injected fault, for the report.
type Fault struct {
	Name  string  `json:"name"`
	AtSec float64 `json:"at_s"`  // since the load started
	ForS  float64 `json:"for_s"` // how long it lasted (0: instantaneous)
}

// Report is the checker's verdict on one scenario: one line for people (Line)
// and one JSON object in build/e2e/report.json.
type Report struct {
	Scenario string  `json:"scenario"`
	Seed     uint64  `json:"seed"`
	Rate     float64 `json:"rate_per_s"`
	LoadSec  float64 `json:"load_s"`
	Faults   []Fault `json:"faults"`

	Sent          int `json:"sent"`
	Accepted      int `json:"accepted"`
	Rejected      int `json:"rejected_4xx"`
	Unavailable   int `json:"unavailable_503"`
	Indeterminate int `json:"indeterminate"`

	Confirmed int `json:"confirmed"`
	Cancelled int `json:"cancelled"`
	// CancelRequests counts the client's cancellations by HTTP status ("0": no answer).
	CancelRequests map[int]int `json:"cancel_requests"`
	// TimedOut counts orders the payment timeout cancelled; Refunded, cancelled
	// orders whose charge was paid back (the compensation).
	TimedOut int `json:"timed_out"`
	Refunded int `json:"refunded"`
	// Extra counts orders that exist although their request got no 201.
	Extra int `json:"extra_orders"`

	Lost          int   `json:"lost"`           // I1: accepted but not terminal (or missing)
	DoubleCharged int   `json:"double_charged"` // I2: orders charged more than once
	OverRefunded  int   `json:"over_refunded"`  // I2: refunds above charges
	Disagreements int   `json:"disagreements"`  // I3: status vs net charge
	MoneyDelta    int64 `json:"money_delta"`    // I4: balances + net charges - initial total
	OutboxLeft    int   `json:"outbox_left"`    // I5
	ConsumerLag   int64 `json:"consumer_lag"`   // I5
	Pending       int   `json:"pending"`        // I5
	// I6
	PoisonExpected   int `json:"poison_expected"`
	PoisonFound      int `json:"poison_found"`
	PoisonUnexpected int `json:"poison_unexpected"`
	PoisonNoReason   int `json:"poison_without_reason"`

	DupDelivered int `json:"dup_delivered"` // event ids seen more than once in a topic
	// LostEvents counts orders whose OrderPlaced never reached Kafka (part of I1:
	// without it a payment timeout would turn a lost event into a cancellation).
	LostEvents int `json:"lost_events"`
	// RecoveredIn is the time from the last repair (the end of the last fault)
	// until the last order accepted before it reached its terminal state.
	RecoveredIn float64 `json:"recovered_in_s"`

	Violations []string `json:"violations"`
	Pass       bool     `json:"pass"`
	// NegativeControl marks a run with a protection switched off on purpose: it
	// must fail, and the suite asserts that it does.
	NegativeControl bool `json:"negative_control,omitempty"`
}

// Line is the one-line summary of the report.
func (r *Report) Line() string {
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	return fmt.Sprintf("%s: accepted=%d confirmed=%d cancelled=%d refunded=%d lost=%d lost_events=%d double_charged=%d dup_delivered=%d recovered_in=%.1fs %s",
		r.Scenario, r.Accepted, r.Confirmed, r.Cancelled, r.Refunded, r.Lost, r.LostEvents, r.DoubleCharged, r.DupDelivered, r.RecoveredIn, verdict)
}

// CheckConfig says what the checker expects.
type CheckConfig struct {
	// InitialMoney is the sum of all balances before the load.
	InitialMoney int64
	// ExpectedPoison are the ids of the messages the scenario injected that must
	// end in a poison topic; nothing else may.
	ExpectedPoison map[string]bool
	// RecoveryWindow bounds the wait for the system to settle after the load.
	RecoveryWindow time.Duration
	// FaultsEnded is when the last fault was repaired; RecoveredIn counts from it.
	FaultsEnded time.Time
}

// TotalMoney sums the balances of all accounts.
func (s *Stack) TotalMoney() (int64, error) {
	var total int64
	err := s.PaymentDB.QueryRow("SELECT COALESCE(SUM(balance_cents), 0) FROM accounts").Scan(&total)
	return total, err
}

// Check waits (up to cfg.RecoveryWindow) for every accepted order to reach a
// terminal state and for the system to drain, then checks the invariants:
//
//	I1 no loss: every accepted order is CONFIRMED or CANCELLED.
//	I2 no double effect: at most one charge per order; refunds never exceed charges.
//	I3 agreement: CONFIRMED ⇔ charged its amount; CANCELLED ⇔ net charge 0.
//	I4 conservation: balances + net charges = the initial total.
//	I5 drain: both outboxes empty, consumer lag 0, no order PENDING.
//	I6 poison: the poison topics hold exactly the injected messages, each with a reason.
//
// It also counts duplicates delivered (one event id twice in a topic, which Kafka
// allows) apart from duplicate effects (which must be 0).
func (s *Stack) Check(h *History, cfg CheckConfig) *Report {
	r := &Report{}
	counts := h.Count()
	r.Sent = len(h.Requests)
	r.Accepted, r.Rejected, r.Unavailable, r.Indeterminate = counts[Accepted], counts[Rejected], counts[Unavailable], counts[Indeterminate]
	accepted := h.AcceptedIDs()
	h.mu.Lock()
	r.CancelRequests = h.Cancels
	h.mu.Unlock()

	// Recovery: all accepted orders terminal, then drained.
	deadline := time.Now().Add(cfg.RecoveryWindow)
	for time.Now().Before(deadline) {
		if n, err := s.notTerminal(accepted); err == nil && n == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	r.RecoveredIn = s.recoveredIn(h, cfg.FaultsEnded)
	for time.Now().Before(deadline) {
		if s.drained() {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.checkOrders(r, accepted)
	s.checkMoney(r, cfg.InitialMoney)
	s.checkDrain(r)
	s.checkTopics(r, cfg.ExpectedPoison)
	r.Pass = len(r.Violations) == 0
	return r
}

// recoveredIn is the time from repaired until the last change of an order whose
// request was accepted before then (orders.updated_at: the database's clock,
// which is this machine's clock too).
func (s *Stack) recoveredIn(h *History, repaired time.Time) float64 {
	var before []any
	h.mu.Lock()
	for _, r := range h.Requests {
		if r.Outcome == Accepted && r.SentAt.Before(repaired) {
			before = append(before, r.OrderID)
		}
	}
	h.mu.Unlock()
	if len(before) == 0 || repaired.IsZero() {
		return 0
	}
	var last sql.NullTime
	err := s.OrderDB.QueryRow("SELECT MAX(updated_at) FROM orders WHERE id IN (?"+strings.Repeat(",?", len(before)-1)+")",
		before...).Scan(&last)
	if err != nil || !last.Valid || last.Time.Before(repaired) {
		return 0
	}
	return float64(last.Time.Sub(repaired).Milliseconds()) / 1000
}

func (r *Report) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

func (s *Stack) notTerminal(ids []string) (int, error) {
	st, err := s.orderStates()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if o, ok := st[id]; !ok || !o.terminal() {
			n++
		}
	}
	return n, nil
}

type orderState struct {
	reason   string
	status   string
	amount   int64
	paid     bool
	refunded bool
}

// terminal: CONFIRMED, or CANCELLED with any charge paid back.
func (o orderState) terminal() bool {
	return o.status == "CONFIRMED" || (o.status == "CANCELLED" && (!o.paid || o.refunded))
}

func (s *Stack) orderStates() (map[string]orderState, error) {
	rows, err := s.OrderDB.Query("SELECT id, status, amount_cents, paid, refunded, cancel_reason FROM orders")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	st := map[string]orderState{}
	for rows.Next() {
		var id string
		var o orderState
		if err := rows.Scan(&id, &o.status, &o.amount, &o.paid, &o.refunded, &o.reason); err != nil {
			return nil, err
		}
		st[id] = o
	}
	return st, rows.Err()
}

func (s *Stack) drained() bool {
	for _, db := range []*sql.DB{s.OrderDB, s.PaymentDB} {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM watermill_outbox").Scan(&n); err != nil || n > 0 {
			return false
		}
	}
	orderGroup, paymentGroup := s.Groups()
	lagP, errP := s.ConsumerLag(paymentGroup, s.Topics.Orders)
	lagO, errO := s.ConsumerLag(orderGroup, s.Topics.Payments)
	return errP == nil && errO == nil && lagP == 0 && lagO == 0
}

// checkOrders: I1, I3 (with the ledger), I5's PENDING part, and I2.
func (s *Stack) checkOrders(r *Report, accepted []string) {
	st, err := s.orderStates()
	if err != nil {
		r.violate("reading orders: %v", err)
		return
	}
	acceptedSet := map[string]bool{}
	for _, id := range accepted {
		acceptedSet[id] = true
		o, ok := st[id]
		switch {
		case !ok:
			r.Lost++
			r.violate("I1: accepted order %s does not exist", id)
		case !o.terminal():
			r.Lost++
			r.violate("I1: accepted order %s is %s (paid=%v refunded=%v)", id, o.status, o.paid, o.refunded)
		case o.status == "CONFIRMED":
			r.Confirmed++
		default:
			r.Cancelled++
		}
	}
	for id, o := range st {
		if !acceptedSet[id] {
			r.Extra++
		}
		if o.status == "PENDING" {
			r.Pending++
		}
		if o.reason == "payment_timeout" {
			r.TimedOut++
		}
		if o.refunded {
			r.Refunded++
		}
	}
	if r.Pending > 0 {
		r.violate("I5: %d order(s) still PENDING", r.Pending)
	}

	type net struct {
		charges, charged, refunded int64
	}
	ledger := map[string]*net{}
	rows, err := s.PaymentDB.Query("SELECT order_id, kind, amount_cents FROM ledger")
	if err != nil {
		r.violate("reading ledger: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id, kind string
		var amount int64
		if err := rows.Scan(&id, &kind, &amount); err != nil {
			r.violate("reading ledger: %v", err)
			return
		}
		n := ledger[id]
		if n == nil {
			n = &net{}
			ledger[id] = n
		}
		switch kind {
		case "charge":
			n.charges++
			n.charged += amount
		case "refund":
			n.refunded += amount
		}
	}
	ids := make([]string, 0, len(ledger))
	for id := range ledger {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		n := ledger[id]
		if n.charges > 1 {
			r.DoubleCharged++
			r.violate("I2: order %s charged %d times (%d cents)", id, n.charges, n.charged)
		}
		if n.refunded > n.charged {
			r.OverRefunded++
			r.violate("I2: order %s refunded %d > charged %d", id, n.refunded, n.charged)
		}
		if _, ok := st[id]; !ok {
			r.Disagreements++
			r.violate("I3: ledger entries for order %s that the order service does not know", id)
		}
	}
	for id, o := range st {
		var netCharge int64
		if n := ledger[id]; n != nil {
			netCharge = n.charged - n.refunded
		}
		switch {
		case o.status == "CONFIRMED" && netCharge != o.amount:
			r.Disagreements++
			r.violate("I3: order %s CONFIRMED but net charge %d != amount %d", id, netCharge, o.amount)
		case o.status == "CANCELLED" && netCharge != 0:
			r.Disagreements++
			r.violate("I3: order %s CANCELLED but net charge %d", id, netCharge)
		}
	}
}

// checkMoney: I4.
func (s *Stack) checkMoney(r *Report, initial int64) {
	var balances, netCharges int64
	if err := s.PaymentDB.QueryRow("SELECT COALESCE(SUM(balance_cents), 0) FROM accounts").Scan(&balances); err != nil {
		r.violate("reading balances: %v", err)
		return
	}
	if err := s.PaymentDB.QueryRow(`SELECT COALESCE(SUM(CASE kind WHEN 'charge' THEN amount_cents ELSE -amount_cents END), 0)
		FROM ledger`).Scan(&netCharges); err != nil {
		r.violate("reading ledger: %v", err)
		return
	}
	r.MoneyDelta = balances + netCharges - initial
	if r.MoneyDelta != 0 {
		r.violate("I4: balances %d + net charges %d != initial %d", balances, netCharges, initial)
	}
}

// checkDrain: I5's outbox and lag part.
func (s *Stack) checkDrain(r *Report) {
	for _, db := range []*sql.DB{s.OrderDB, s.PaymentDB} {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM watermill_outbox").Scan(&n); err != nil {
			r.violate("I5: reading outbox: %v", err)
		}
		r.OutboxLeft += n
	}
	orderGroup, paymentGroup := s.Groups()
	for _, gt := range [][2]string{{paymentGroup, s.Topics.Orders}, {orderGroup, s.Topics.Payments}} {
		lag, err := s.ConsumerLag(gt[0], gt[1])
		if err != nil {
			r.violate("I5: consumer lag of %s: %v", gt[0], err)
		}
		r.ConsumerLag += lag
	}
	if r.OutboxLeft > 0 || r.ConsumerLag > 0 {
		r.violate("I5: not drained: %d outbox row(s) left, consumer lag %d", r.OutboxLeft, r.ConsumerLag)
	}
}

// checkPaymentEvents counts as lost events the payment decisions recorded in the
// payment database whose event never reached Kafka: a charge without
// PaymentCompleted, a refusal without PaymentFailed, a refund without
// PaymentRefunded. The other invariants can miss such a loss, because the
// order's payment timeout then cancels and refunds the order, and money balances.
func (s *Stack) checkPaymentEvents(r *Report, published map[[2]string]bool) {
	rows, err := s.PaymentDB.Query("SELECT order_id, status, charged_cents, refunded_cents FROM payments")
	if err != nil {
		r.violate("reading payments: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id, status string
		var charged, refunded int64
		if err := rows.Scan(&id, &status, &charged, &refunded); err != nil {
			r.violate("reading payments: %v", err)
			return
		}
		var want []events.Type
		if charged > 0 {
			want = append(want, events.TypePaymentCompleted)
		}
		if status == "REFUSED" {
			want = append(want, events.TypePaymentFailed)
		}
		if refunded > 0 {
			want = append(want, events.TypePaymentRefunded)
		}
		for _, t := range want {
			if !published[[2]string{string(t), id}] {
				r.LostEvents++
				r.violate("I1: the %s of order %s is recorded in the payment database but never reached Kafka", t, id)
			}
		}
	}
	if err := rows.Err(); err != nil {
		r.violate("reading payments: %v", err)
	}
}

// checkTopics: I6, lost events and duplicates delivered.
func (s *Stack) checkTopics(r *Report, expected map[string]bool) {
	published := map[[2]string]bool{} // (event type, order id) seen in a topic
	for _, topic := range []string{s.Topics.Orders, s.Topics.Payments} {
		msgs, err := s.ReadAll(topic)
		if err != nil {
			r.violate("reading %s: %v", topic, err)
			continue
		}
		seen := map[string]int{}
		for _, m := range msgs {
			if seen[m.UUID]++; seen[m.UUID] == 2 {
				r.DupDelivered++
			}
			published[[2]string{m.Metadata.Get(events.MetadataType), m.Metadata.Get(events.MetadataKey)}] = true
		}
	}
	if st, err := s.orderStates(); err != nil {
		r.violate("reading orders: %v", err)
	} else {
		for id := range st {
			if !published[[2]string{string(events.TypeOrderPlaced), id}] {
				r.LostEvents++
				r.violate("I1: the OrderPlaced of order %s never reached Kafka", id)
			}
		}
	}
	s.checkPaymentEvents(r, published)
	r.PoisonExpected = len(expected)
	found := map[string]bool{}
	for _, topic := range []string{s.Topics.OrderPoison, s.Topics.PaymentPoison} {
		msgs, err := s.ReadAll(topic)
		if err != nil {
			r.violate("reading %s: %v", topic, err)
			continue
		}
		for _, m := range msgs {
			if m.Metadata.Get(middleware.ReasonForPoisonedKey) == "" {
				r.PoisonNoReason++
				r.violate("I6: poisoned message %s in %s has no reason", m.UUID, topic)
			}
			if !expected[m.UUID] {
				r.PoisonUnexpected++
				r.violate("I6: unexpected message %s in %s: %s", m.UUID, topic, m.Metadata.Get(middleware.ReasonForPoisonedKey))
				continue
			}
			found[m.UUID] = true
		}
	}
	r.PoisonFound = len(found)
	if r.PoisonFound != r.PoisonExpected {
		var missing []string
		for id := range expected {
			if !found[id] {
				missing = append(missing, id)
			}
		}
		r.violate("I6: %d injected message(s) not in a poison topic: %s", len(missing), strings.Join(missing, ", "))
	}
}

// ReadAll is the package-level ReadAll on the stack's Kafka.
func (s *Stack) ReadAll(topic string) ([]*message.Message, error) { return ReadAll(s.Kafka, topic) }

// ReadAll returns every message of topic, from the oldest offset to the newest
// at the time of the call, partition by partition.
func ReadAll(kafka messaging.KafkaConfig, topic string) ([]*message.Message, error) {
	client, err := sarama.NewClient(kafka.Brokers, kafka.ConsumerConfig())
	if err != nil {
		return nil, err
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	partitions, err := client.Partitions(topic)
	if err != nil {
		return nil, err
	}
	unmarshaler := messaging.Marshaler(false)
	var out []*message.Message
	for _, p := range partitions {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		if newest <= oldest {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, oldest)
		if err != nil {
			return nil, err
		}
		timeout := time.After(30 * time.Second)
	read:
		for {
			select {
			case km := <-pc.Messages():
				m, err := unmarshaler.Unmarshal(km)
				if err != nil {
					pc.Close()
					return nil, err
				}
				out = append(out, m)
				if km.Offset >= newest-1 {
					break read
				}
			case <-timeout:
				pc.Close()
				return nil, fmt.Errorf("reading %s/%d: timed out", topic, p)
			}
		}
		pc.Close()
	}
	return out, nil
}
