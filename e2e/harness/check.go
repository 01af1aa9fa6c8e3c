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
	"github.com/onceflow/onceflow/pkg/kafka"
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
	// Refused counts answers 503, retries included (History.Refused).
	Refused int `json:"answers_503"`
	// ServerErrors counts answers with a 5xx other than 503, retries included
	// (History.ServerErrors): a violation with CheckConfig.NoServerErrors.
	ServerErrors int `json:"server_errors"`
	// Attempts counts every order request sent, retries included; Replayed the
	// requests whose last answer was a replay (Idempotent-Replayed: true).
	Attempts int `json:"attempts"`
	Replayed int `json:"replayed"`

	Confirmed int `json:"confirmed"`
	Cancelled int `json:"cancelled"`
	// CancelRequests counts the client's cancellations by HTTP status ("0": no answer).
	CancelRequests map[int]int `json:"cancel_requests"`
	// TimedOut counts orders the payment timeout cancelled; Refunded, cancelled
	// orders whose charge was paid back (the compensation).
	TimedOut int `json:"timed_out"`
	Refunded int `json:"refunded"`
	// Extra counts orders that exist although no request for them got a 201 (I8).
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

	// Audit is what the services' delivery auditors proved broken by the end
	// ("check/scope" -> violations; Stack.Audit): nothing in a clean run.
	Audit map[string]int `json:"audit,omitempty"`

	DupDelivered int `json:"dup_delivered"` // event ids seen more than once in a topic
	// OutOfOrder counts events that first appear on their topic after a higher
	// version of the same order (I7).
	OutOfOrder int `json:"out_of_order"`
	// LostEvents counts orders whose OrderPlaced never reached Kafka (part of I1:
	// without it a payment timeout would turn a lost event into a cancellation).
	LostEvents int `json:"lost_events"`
	// LostEventsWaiting counts the OrderPlaced events of LostEvents whose row
	// still waits in the order outbox: not relayed yet, and not let go of
	// either (a relay that fell far behind). The delivery auditor judges only
	// rows its relay let go of, so it counts LostEvents - LostEventsWaiting.
	LostEventsWaiting int `json:"lost_events_waiting,omitempty"`
	// Parked counts events parked in an outbox: Kafka refused them for
	// good. They are accounted for, not lost; only crafted orders may have them.
	Parked int `json:"parked"`
	// Crafted counts the orders the scenario made on purpose outside the load
	// (Stack.Craft), e.g. with an over-size request id.
	Crafted int `json:"crafted"`
	// RecoveredIn is the time from the last repair (the end of the last fault)
	// until the last order accepted before it reached its terminal state.
	RecoveredIn float64 `json:"recovered_in_s"`

	Violations []string `json:"violations"`
	// Notes are findings that are not violations (yet), e.g. extra orders (I8)
	// while the client cannot retry safely.
	Notes []string `json:"notes,omitempty"`
	Pass  bool     `json:"pass"`
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
	retries := ""
	if r.Attempts > r.Sent {
		retries = fmt.Sprintf(" retries=%d replayed=%d", r.Attempts-r.Sent, r.Replayed)
	}
	if r.ServerErrors > 0 {
		retries += fmt.Sprintf(" server_errors=%d", r.ServerErrors)
	}
	return fmt.Sprintf("%s: accepted=%d confirmed=%d cancelled=%d refunded=%d lost=%d lost_events=%d parked=%d double_charged=%d out_of_order=%d extra_orders=%d dup_delivered=%d%s recovered_in=%.1fs %s",
		r.Scenario, r.Accepted, r.Confirmed, r.Cancelled, r.Refunded, r.Lost, r.LostEvents, r.Parked, r.DoubleCharged, r.OutOfOrder, r.Extra,
		r.DupDelivered, retries, r.RecoveredIn, verdict)
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
	// NoExtraOrders makes every extra order (I8) a violation. Set it for a load
	// whose client retries with idempotency keys until it gets a definite answer
	// (RunLoad's default, so the fault suite sets it for every scenario): then
	// every order must come from a request that got its 201. Without keys a
	// request that timed out may have created an order the client never heard
	// of, so extra orders are only reported (and a violation only beyond the
	// number of such requests).
	NoExtraOrders bool
	// Crafted are the ids of orders a scenario made on purpose so that their
	// events cannot be published (Stack.Craft; Stack.Check fills it in). Each must
	// end in the defined state of ADR 22: CANCELLED by payment_timeout, unpaid, its
	// OrderPlaced parked as message_too_large and its OrderCancelled parked behind
	// it. They are not extra orders (I8), and no other order may have a parked
	// event (I9).
	Crafted map[string]bool
	// NoServerErrors makes every answer with a 5xx other than 503 a violation:
	// a service that cannot store a request must say so with a 503 (and
	// Retry-After), never a 500.
	NoServerErrors bool
}

// TotalMoney sums the balances of all accounts.
func (s *Stack) TotalMoney() (int64, error) {
	var total int64
	err := s.PaymentDB.QueryRow("SELECT COALESCE(SUM(balance_cents), 0) FROM accounts").Scan(&total)
	return total, err
}

// Check waits (up to cfg.RecoveryWindow) for every accepted order to reach a
// terminal state and for the system to drain, then reads a Snapshot of both
// databases and every topic and judges it with Evaluate. It never fails: what it
// cannot read is a violation in the report.
func (s *Stack) Check(h *History, cfg CheckConfig) *Report {
	if cfg.Crafted == nil {
		cfg.Crafted = s.craftedOrders()
	}
	s.Settle(h.AcceptedIDs(), time.Now().Add(cfg.RecoveryWindow))
	return Evaluate(h, s.Snapshot(), cfg)
}

// Settle waits until every order of accepted is terminal (read in the order
// database) and then until the system has drained, or until deadline, and
// reports whether it got there. Call it once nothing new enters the system.
func (s *Stack) Settle(accepted []string, deadline time.Time) bool {
	for {
		if n, err := s.notTerminal(accepted); err == nil && n == 0 {
			break
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
	for !s.drained() {
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
	return true
}

// Snapshot is what the checker reads once the system has settled: both
// databases and every topic of a stack. Stack.Snapshot collects it; Evaluate
// judges it without a server, so every invariant can be tested on a made-up one.
type Snapshot struct {
	// Orders are the rows of the order database, by order id.
	Orders map[string]OrderRow
	// Ledger is every money movement of the payment database.
	Ledger []LedgerEntry
	// Payments is every payment decision of the payment database.
	Payments []PaymentRow
	// Balances is the sum of all account balances.
	Balances int64
	// OutboxRows counts the rows left in both outboxes.
	OutboxRows int
	// OrdersPlacedWaiting are the orders whose OrderPlaced row is still in the
	// order outbox.
	OrdersPlacedWaiting map[string]bool
	// ConsumerLag is the lag of both services' consumer groups on their topics.
	ConsumerLag int64
	// Events holds the messages of the event topics (orders, then payments), each
	// topic partition by partition in offset order.
	Events []TopicMessages
	// Poisoned holds the messages of both poison topics.
	Poisoned []TopicMessages
	// Parked holds the parked outbox rows of both databases.
	Parked []ParkedEvent
	// Errors says what could not be read; each becomes a violation.
	Errors []string
}

// TopicMessages are the messages of one topic.
type TopicMessages struct {
	Topic    string
	Messages []*message.Message
}

// ParkedEvent is a row of an outbox_parked table.
type ParkedEvent struct {
	MessageID string
	OrderID   string
	EventType string
	Reason    string
}

// OrderRow is an order as the order database holds it.
type OrderRow struct {
	Status       string
	CancelReason string
	Amount       int64
	Paid         bool
	Refunded     bool
	UpdatedAt    time.Time
}

// terminal: CONFIRMED, or CANCELLED with any charge paid back.
func (o OrderRow) terminal() bool {
	return o.Status == "CONFIRMED" || (o.Status == "CANCELLED" && (!o.Paid || o.Refunded))
}

// LedgerEntry is one money movement: kind "charge" or "refund".
type LedgerEntry struct {
	OrderID string
	Kind    string
	Amount  int64
}

// PaymentRow is a payment decision as the payment database holds it.
type PaymentRow struct {
	OrderID  string
	Status   string
	Charged  int64
	Refunded int64
}

// Snapshot reads everything Evaluate needs.
func (s *Stack) Snapshot() *Snapshot {
	snap := &Snapshot{}
	fail := func(what string, err error) {
		snap.Errors = append(snap.Errors, fmt.Sprintf("reading %s: %v", what, err))
	}
	var err error
	if snap.Orders, err = s.orderRows(); err != nil {
		fail("orders", err)
	}
	if snap.Ledger, err = s.ledger(); err != nil {
		fail("the ledger", err)
	}
	if snap.Payments, err = s.payments(); err != nil {
		fail("payments", err)
	}
	if err := s.PaymentDB.QueryRow("SELECT COALESCE(SUM(balance_cents), 0) FROM accounts").Scan(&snap.Balances); err != nil {
		fail("balances", err)
	}
	for _, db := range []*sql.DB{s.OrderDB, s.PaymentDB} {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM watermill_outbox").Scan(&n); err != nil {
			fail("an outbox", err)
		}
		snap.OutboxRows += n
	}
	if snap.OrdersPlacedWaiting, err = s.ordersPlacedWaiting(); err != nil {
		fail("the order outbox's rows", err)
	}
	orderGroup, paymentGroup := s.Groups()
	for _, gt := range [][2]string{{paymentGroup, s.Topics.Orders}, {orderGroup, s.Topics.Payments}} {
		lag, err := s.ConsumerLag(gt[0], gt[1])
		if err != nil {
			fail("the consumer lag of "+gt[0], err)
		}
		snap.ConsumerLag += lag
	}
	read := func(topics ...string) []TopicMessages {
		var out []TopicMessages
		for _, topic := range topics {
			msgs, err := s.ReadAll(topic)
			if err != nil {
				fail(topic, err)
				continue
			}
			out = append(out, TopicMessages{Topic: topic, Messages: msgs})
		}
		return out
	}
	for _, db := range []*sql.DB{s.OrderDB, s.PaymentDB} {
		parked, err := parkedEvents(db)
		if err != nil {
			fail("parked outbox rows", err)
		}
		snap.Parked = append(snap.Parked, parked...)
	}
	snap.Events = read(s.Topics.Orders, s.Topics.Payments)
	snap.Poisoned = read(s.Topics.OrderPoison, s.Topics.PaymentPoison)
	return snap
}

func parkedEvents(db *sql.DB) ([]ParkedEvent, error) {
	rows, err := db.Query("SELECT message_id, partition_key, COALESCE(JSON_VALUE(metadata, '$.event_type'), ''), reason FROM outbox_parked ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ParkedEvent
	for rows.Next() {
		var p ParkedEvent
		if err := rows.Scan(&p.MessageID, &p.OrderID, &p.EventType, &p.Reason); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (s *Stack) orderRows() (map[string]OrderRow, error) {
	rows, err := s.OrderDB.Query("SELECT id, status, amount_cents, paid, refunded, cancel_reason, updated_at FROM orders")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	st := map[string]OrderRow{}
	for rows.Next() {
		var id string
		var o OrderRow
		if err := rows.Scan(&id, &o.Status, &o.Amount, &o.Paid, &o.Refunded, &o.CancelReason, &o.UpdatedAt); err != nil {
			return nil, err
		}
		st[id] = o
	}
	return st, rows.Err()
}

func (s *Stack) ledger() ([]LedgerEntry, error) {
	rows, err := s.PaymentDB.Query("SELECT order_id, kind, amount_cents FROM ledger ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LedgerEntry
	for rows.Next() {
		var e LedgerEntry
		if err := rows.Scan(&e.OrderID, &e.Kind, &e.Amount); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ordersPlacedWaiting returns the orders whose OrderPlaced row is still in
// the order outbox.
func (s *Stack) ordersPlacedWaiting() (map[string]bool, error) {
	rows, err := s.OrderDB.Query("SELECT event_key FROM watermill_outbox WHERE JSON_VALUE(event_metadata, '$."+events.MetadataType+"') = ?",
		string(events.TypeOrderPlaced))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

func (s *Stack) payments() ([]PaymentRow, error) {
	rows, err := s.PaymentDB.Query("SELECT order_id, status, charged_cents, refunded_cents FROM payments")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PaymentRow
	for rows.Next() {
		var p PaymentRow
		if err := rows.Scan(&p.OrderID, &p.Status, &p.Charged, &p.Refunded); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (s *Stack) notTerminal(ids []string) (int, error) {
	st, err := s.orderRows()
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

// drained reports whether no work is left anywhere: every order event is in
// Kafka, consumed by the payment service, every payment event it caused is in
// Kafka, consumed by the order service. The checks run in that causal order: a
// payment consumer that takes a message after its outbox was read would leave
// a row unseen if the outbox were read first. It assumes nothing new enters
// (no requests, no timeouts firing).
func (s *Stack) drained() bool {
	outboxEmpty := func(db *sql.DB) bool {
		var n int
		return db.QueryRow("SELECT COUNT(*) FROM watermill_outbox").Scan(&n) == nil && n == 0
	}
	orderGroup, paymentGroup := s.Groups()
	lagZero := func(group, topic string) bool {
		lag, err := s.ConsumerLag(group, topic)
		return err == nil && lag == 0
	}
	return outboxEmpty(s.OrderDB) && lagZero(paymentGroup, s.Topics.Orders) &&
		outboxEmpty(s.PaymentDB) && lagZero(orderGroup, s.Topics.Payments)
}

// Evaluate judges a snapshot against the load's history:
//
//	I1 no loss: every accepted order is CONFIRMED or CANCELLED (with any charge
//	   refunded), and no event is lost: every order's OrderPlaced and every payment
//	   decision (charge, refusal, refund) is in Kafka.
//	I2 no double effect: at most one charge per order; refunds never exceed charges.
//	I3 agreement: CONFIRMED ⇔ charged its amount; CANCELLED ⇔ net charge 0.
//	I4 conservation: balances + net charges = the initial total.
//	I5 drain: both outboxes empty, consumer lag 0, no order PENDING.
//	I6 poison: the poison topics hold exactly the injected messages, each with a reason.
//	I7 per-order order: on each event topic, the events of an order appear in
//	   aggregate-version order (the first appearance of each version).
//	I8 extra orders: orders that exist although no request for them got a 201.
//	   Reported; a violation with cfg.NoExtraOrders, or when there are more of
//	   them than requests whose outcome the client could not know.
//	I9 parked: an event parked in an outbox is accounted for, not lost;
//	   only crafted orders (cfg.Crafted) may have parked events, and each crafted
//	   order ends CANCELLED by payment_timeout, unpaid, with its OrderPlaced
//	   (message_too_large) and OrderCancelled (behind_parked) parked.
//
// It also counts duplicates delivered (one event id twice in a topic, which Kafka
// allows) apart from duplicate effects (which must be 0).
func Evaluate(h *History, snap *Snapshot, cfg CheckConfig) *Report {
	r := &Report{}
	counts := h.Count()
	r.Sent = len(h.Requests)
	r.Accepted, r.Rejected, r.Unavailable, r.Indeterminate = counts[Accepted], counts[Rejected], counts[Unavailable], counts[Indeterminate]
	r.Attempts, r.Replayed = h.Attempts()
	r.Refused = h.Refused()
	if r.ServerErrors = h.ServerErrors(); r.ServerErrors > 0 && cfg.NoServerErrors {
		r.violate("%d answer(s) with a 5xx other than 503", r.ServerErrors)
	}
	h.mu.Lock()
	r.CancelRequests = h.Cancels
	h.mu.Unlock()
	for _, e := range snap.Errors {
		r.violate("%s", e)
	}
	r.RecoveredIn = recoveredIn(h, snap, cfg.FaultsEnded)
	checkOrders(r, snap, h.AcceptedIDs(), cfg)
	checkMoney(r, snap, cfg.InitialMoney)
	r.OutboxLeft, r.ConsumerLag = snap.OutboxRows, snap.ConsumerLag
	if r.OutboxLeft > 0 || r.ConsumerLag > 0 {
		r.violate("I5: not drained: %d outbox row(s) left, consumer lag %d", r.OutboxLeft, r.ConsumerLag)
	}
	checkTopics(r, snap, cfg.ExpectedPoison)
	checkParked(r, snap, cfg.Crafted)
	r.Pass = len(r.Violations) == 0
	return r
}

// recoveredIn is the time from repaired until the last change of an order whose
// request was accepted before then (orders.updated_at: the database's clock,
// which is this machine's clock too).
func recoveredIn(h *History, snap *Snapshot, repaired time.Time) float64 {
	if repaired.IsZero() {
		return 0
	}
	var last time.Time
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, q := range h.Requests {
		if q.Outcome != Accepted || !q.SentAt.Before(repaired) {
			continue
		}
		if o, ok := snap.Orders[q.OrderID]; ok && o.UpdatedAt.After(last) {
			last = o.UpdatedAt
		}
	}
	if last.Before(repaired) {
		return 0
	}
	return float64(last.Sub(repaired).Milliseconds()) / 1000
}

func (r *Report) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// checkOrders: I1, I2, I3, I5's PENDING part and I8.
func checkOrders(r *Report, snap *Snapshot, accepted []string, cfg CheckConfig) {
	acceptedSet := map[string]bool{}
	for _, id := range accepted {
		acceptedSet[id] = true
		o, ok := snap.Orders[id]
		switch {
		case !ok:
			r.Lost++
			r.violate("I1: accepted order %s does not exist", id)
		case !o.terminal():
			r.Lost++
			r.violate("I1: accepted order %s is %s (paid=%v refunded=%v)", id, o.Status, o.Paid, o.Refunded)
		case o.Status == "CONFIRMED":
			r.Confirmed++
		default:
			r.Cancelled++
		}
	}
	var extra []string
	for id, o := range snap.Orders {
		if !acceptedSet[id] && !cfg.Crafted[id] {
			extra = append(extra, id)
		}
		if o.Status == "PENDING" {
			r.Pending++
		}
		if o.CancelReason == "payment_timeout" {
			r.TimedOut++
		}
		if o.Refunded {
			r.Refunded++
		}
	}
	if r.Pending > 0 {
		r.violate("I5: %d order(s) still PENDING", r.Pending)
	}
	checkExtraOrders(r, extra, cfg.NoExtraOrders)

	type net struct{ charges, charged, refunded int64 }
	ledger := map[string]*net{}
	for _, e := range snap.Ledger {
		n := ledger[e.OrderID]
		if n == nil {
			n = &net{}
			ledger[e.OrderID] = n
		}
		switch e.Kind {
		case "charge":
			n.charges++
			n.charged += e.Amount
		case "refund":
			n.refunded += e.Amount
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
		if _, ok := snap.Orders[id]; !ok {
			r.Disagreements++
			r.violate("I3: ledger entries for order %s that the order service does not know", id)
		}
	}
	for id, o := range snap.Orders {
		var netCharge int64
		if n := ledger[id]; n != nil {
			netCharge = n.charged - n.refunded
		}
		switch {
		case o.Status == "CONFIRMED" && netCharge != o.Amount:
			r.Disagreements++
			r.violate("I3: order %s CONFIRMED but net charge %d != amount %d", id, netCharge, o.Amount)
		case o.Status == "CANCELLED" && netCharge != 0:
			r.Disagreements++
			r.violate("I3: order %s CANCELLED but net charge %d", id, netCharge)
		}
	}
}

// checkExtraOrders: I8. An order nobody got a 201 for comes from a request
// whose answer was lost (a timeout, a broken connection, a 503 whose commit
// went through): a client that retries without a key pays twice. With keys and
// retries until a definite answer (noExtra) there must be none; without, they
// are reported, and more extra orders than such requests cannot be explained
// and is always a violation.
func checkExtraOrders(r *Report, extra []string, noExtra bool) {
	sort.Strings(extra)
	r.Extra = len(extra)
	if r.Extra == 0 {
		return
	}
	unknown := r.Indeterminate + r.Unavailable
	r.note("I8: %d order(s) exist that no request got a 201 for (%d request(s) had no definite answer), e.g. %s",
		r.Extra, unknown, strings.Join(extra[:min(5, len(extra))], ", "))
	switch {
	case noExtra:
		r.violate("I8: %d order(s) exist that no request got a 201 for, e.g. %s", r.Extra, strings.Join(extra[:min(5, len(extra))], ", "))
	case r.Extra > unknown:
		r.violate("I8: %d order(s) exist that no request got a 201 for, more than the %d request(s) without a definite answer",
			r.Extra, unknown)
	}
}

// checkMoney: I4.
func checkMoney(r *Report, snap *Snapshot, initial int64) {
	var netCharges int64
	for _, e := range snap.Ledger {
		switch e.Kind {
		case "charge":
			netCharges += e.Amount
		case "refund":
			netCharges -= e.Amount
		}
	}
	r.MoneyDelta = snap.Balances + netCharges - initial
	if r.MoneyDelta != 0 {
		r.violate("I4: balances %d + net charges %d != initial %d", snap.Balances, netCharges, initial)
	}
}

// checkPaymentEvents counts as lost events the payment decisions recorded in the
// payment database whose event never reached Kafka: a charge without
// PaymentCompleted, a refusal without PaymentFailed, a refund without
// PaymentRefunded, a failed refund without PaymentRefundFailed. The other invariants can miss such a loss, because the
// order's payment timeout then cancels and refunds the order, and money balances.
func checkPaymentEvents(r *Report, payments []PaymentRow, published map[[2]string]bool) {
	for _, p := range payments {
		var want []events.Type
		if p.Charged > 0 {
			want = append(want, events.TypePaymentCompleted)
		}
		if p.Status == "REFUSED" {
			want = append(want, events.TypePaymentFailed)
		}
		if p.Refunded > 0 {
			want = append(want, events.TypePaymentRefunded)
		}
		if p.Status == "REFUND_FAILED" {
			want = append(want, events.TypePaymentRefundFailed)
		}
		for _, t := range want {
			if !published[[2]string{string(t), p.OrderID}] {
				r.LostEvents++
				r.violate("I1: the %s of order %s is recorded in the payment database but never reached Kafka", t, p.OrderID)
			}
		}
	}
}

// checkParked: I9.
func checkParked(r *Report, snap *Snapshot, crafted map[string]bool) {
	r.Parked, r.Crafted = len(snap.Parked), len(crafted)
	byOrder := map[string]map[string]string{} // order id -> event type -> reason
	for _, p := range snap.Parked {
		if !crafted[p.OrderID] {
			r.violate("I9: event %s (%s) of order %s, which the scenario did not craft, is parked: %s", p.MessageID, p.EventType, p.OrderID, p.Reason)
			continue
		}
		if byOrder[p.OrderID] == nil {
			byOrder[p.OrderID] = map[string]string{}
		}
		byOrder[p.OrderID][p.EventType] = p.Reason
	}
	ids := make([]string, 0, len(crafted))
	for id := range crafted {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		o, ok := snap.Orders[id]
		switch {
		case !ok:
			r.violate("I9: crafted order %s does not exist", id)
			continue
		case o.Status != "CANCELLED" || o.CancelReason != "payment_timeout" || o.Paid:
			r.violate("I9: crafted order %s is %s (reason %q, paid=%v), want CANCELLED by payment_timeout, unpaid", id, o.Status, o.CancelReason, o.Paid)
		}
		got := byOrder[id]
		if got[string(events.TypeOrderPlaced)] != "message_too_large" || got[string(events.TypeOrderCancelled)] != "behind_parked" {
			r.violate("I9: crafted order %s has parked events %v, want OrderPlaced message_too_large and OrderCancelled behind_parked", id, got)
		}
	}
}

// checkOrdering: I7. Walking a topic in offset order (a key's messages share a
// partition), the first appearance of each version of an order must come after
// the first appearance of every lower version: a consumer that sees version 3
// before version 2 applies them in the wrong order or drops one as stale.
// Duplicates (a version seen again later) are allowed. Messages that are not
// events of this contract, and the injected poison, are I6's business.
func checkOrdering(r *Report, topic string, msgs []*message.Message, skip map[string]bool) {
	seen := map[string]map[int]bool{}
	highest := map[string]int{}
	for _, m := range msgs {
		if skip[m.UUID] {
			continue
		}
		e, err := events.Decode(m)
		if err != nil {
			continue
		}
		if seen[e.OrderID] == nil {
			seen[e.OrderID] = map[int]bool{}
		}
		if seen[e.OrderID][e.OrderVersion] {
			continue
		}
		seen[e.OrderID][e.OrderVersion] = true
		if e.OrderVersion < highest[e.OrderID] {
			r.OutOfOrder++
			r.violate("I7: on %s, version %d of order %s (%s, event %s) first appears after version %d",
				topic, e.OrderVersion, e.OrderID, e.Type(), m.UUID, highest[e.OrderID])
			continue
		}
		highest[e.OrderID] = e.OrderVersion
	}
}

// checkTopics: I6, I7, lost events and duplicates delivered.
func checkTopics(r *Report, snap *Snapshot, expected map[string]bool) {
	published := map[[2]string]bool{} // (event type, order id) seen in a topic, or parked (I9)
	for _, p := range snap.Parked {
		published[[2]string{p.EventType, p.OrderID}] = true
	}
	for _, tm := range snap.Events {
		seen := map[string]int{}
		for _, m := range tm.Messages {
			if seen[m.UUID]++; seen[m.UUID] == 2 {
				r.DupDelivered++
			}
			published[[2]string{m.Metadata.Get(events.MetadataType), m.Metadata.Get(events.MetadataKey)}] = true
		}
		checkOrdering(r, tm.Topic, tm.Messages, expected)
	}
	ids := make([]string, 0, len(snap.Orders))
	for id := range snap.Orders {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !published[[2]string{string(events.TypeOrderPlaced), id}] {
			r.LostEvents++
			if snap.OrdersPlacedWaiting[id] {
				r.LostEventsWaiting++
				r.violate("I1: the OrderPlaced of order %s never reached Kafka (its row still waits in the outbox)", id)
				continue
			}
			r.violate("I1: the OrderPlaced of order %s never reached Kafka", id)
		}
	}
	checkPaymentEvents(r, snap.Payments, published)
	r.PoisonExpected = len(expected)
	found := map[string]bool{}
	for _, tm := range snap.Poisoned {
		for _, m := range tm.Messages {
			if m.Metadata.Get(middleware.ReasonForPoisonedKey) == "" {
				r.PoisonNoReason++
				r.violate("I6: poisoned message %s in %s has no reason", m.UUID, tm.Topic)
			}
			if !expected[m.UUID] {
				r.PoisonUnexpected++
				r.violate("I6: unexpected message %s in %s: %s", m.UUID, tm.Topic, m.Metadata.Get(middleware.ReasonForPoisonedKey))
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
		sort.Strings(missing)
		r.violate("I6: %d injected message(s) not in a poison topic: %s", len(missing), strings.Join(missing, ", "))
	}
}

// ReadAll is the package-level ReadAll on the stack's Kafka.
func (s *Stack) ReadAll(topic string) ([]*message.Message, error) { return ReadAll(s.Kafka, topic) }

// ReadAll returns every message of topic, from the oldest offset to the newest
// at the time of the call, partition by partition.
func ReadAll(kc kafka.Config, topic string) ([]*message.Message, error) {
	unmarshaler := kafka.Marshaler(false)
	var out []*message.Message
	err := readTopic(kc, topic, func(km *sarama.ConsumerMessage) error {
		m, err := unmarshaler.Unmarshal(km)
		if err == nil {
			out = append(out, m)
		}
		return err
	})
	return out, err
}

// readTopic calls fn with every message of topic, from the oldest offset to the
// newest at the time of the call, partition by partition; fn's error stops it.
func readTopic(kc kafka.Config, topic string, fn func(*sarama.ConsumerMessage) error) error {
	client, err := sarama.NewClient(kc.Brokers, kc.ConsumerConfig())
	if err != nil {
		return err
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return err
	}
	defer consumer.Close()
	partitions, err := client.Partitions(topic)
	if err != nil {
		return err
	}
	for _, p := range partitions {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return err
		}
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return err
		}
		if newest <= oldest {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, oldest)
		if err != nil {
			return err
		}
		timeout := time.After(30 * time.Second)
	read:
		for {
			select {
			case km := <-pc.Messages():
				if err := fn(km); err != nil {
					pc.Close()
					return err
				}
				if km.Offset >= newest-1 {
					break read
				}
			case <-timeout:
				pc.Close()
				return fmt.Errorf("reading %s/%d: timed out", topic, p)
			}
		}
		pc.Close()
	}
	return nil
}
