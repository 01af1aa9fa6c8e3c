package harness

import (
	"database/sql"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// StrategyRow is one failure strategy's line of the comparison (e2e
// TestStrategies): what the payment group did with the same load and
// the same faults, measured in the stores afterwards. build/e2e/strategies.json
// is an array of them; docs/strategies.md shows them as a table.
type StrategyRow struct {
	Strategy string `json:"strategy"`
	// Lost: real order events (not the injected garbage) the payment group never
	// processed and that are held nowhere for a replay: not in the poison topic,
	// not in a parked or requeue table, not still waiting in Kafka behind the
	// group's committed offset.
	Lost int `json:"lost"`
	// Double: orders charged more than once (the checker's I2).
	Double int `json:"double"`
	// OutOfOrderKeys: orders for which the payment group processed a later event
	// (higher order_version) while an earlier one of the same order was not yet
	// processed (processed later, or never).
	OutOfOrderKeys int `json:"out_of_order_keys"`
	// Poisoned: messages in the payment poison topic (garbage included);
	// PoisonedEvents: of which real order events.
	Poisoned       int `json:"poisoned"`
	PoisonedEvents int `json:"poisoned_events"`
	// Parked: messages held in a parked table of the payment database;
	// Requeued: held in a requeue (delayed retry) table, not yet retried.
	Parked   int `json:"parked"`
	Requeued int `json:"requeued"`
	// Pending: real events still in Kafka at or after the group's committed
	// offset (a blocked or stopped partition); not lost, not processed.
	Pending int `json:"pending"`
	// HealthyP99Ms: p99 of POST→terminal (ms) for the orders of healthy
	// customers (not cursed, not flaky); null if more than 1 % of them never
	// got there.
	HealthyP99Ms *int64 `json:"healthy_p99_ms"`
	// RecoveryS: seconds from the end of the last fault (the database back) until
	// every healthy order accepted before then was terminal by the saga (paid,
	// refused or cancelled by the client, not by the payment timeout); null if
	// that never happened within the wait.
	RecoveryS *float64 `json:"recovery_s"`

	// Events counts the real order events in the orders topic (each once);
	// Processed, those the payment group processed.
	Events    int `json:"events"`
	Processed int `json:"processed"`
	// Accepted orders (load and timeline), their end states, and how many of the
	// healthy ones the payment timeout cancelled.
	Accepted        int `json:"accepted"`
	Confirmed       int `json:"confirmed"`
	Cancelled       int `json:"cancelled"`
	TimedOut        int `json:"timed_out"`
	HealthyTimedOut int `json:"healthy_timed_out"`
	// NotTerminal: accepted orders that never reached CONFIRMED or CANCELLED
	// (with any charge refunded) within the wait.
	NotTerminal int `json:"not_terminal"`
	// MoneyDelta (I4), OverRefunded (I2) and Disagreements (I3) from the checker.
	MoneyDelta    int64 `json:"money_delta"`
	OverRefunded  int   `json:"over_refunded"`
	Disagreements int   `json:"disagreements"`
	// Restarts: how often the harness, acting as an orchestrator, restarted the
	// payment process because /healthz answered 503.
	Restarts int `json:"restarts"`
	// Audit is what the services' production auditors counted, "check/scope"
	// -> violations (Stack.Audit); every strategy must leave it empty.
	Audit map[string]int `json:"audit,omitempty"`
	// Faults is the timeline as played; DurationS the strategy's whole run.
	Faults    []Fault `json:"faults"`
	DurationS float64 `json:"duration_s"`
	// Violations are broken promises (what every strategy must keep, and the
	// strategy's own); Expected are findings that are this strategy's known cost
	// (e.g. skip loses events). Pass: no violation.
	Violations []string `json:"violations"`
	Expected   []string `json:"expected,omitempty"`
	Pass       bool     `json:"pass"`
}

// Record is one message of a topic with where it is.
type Record struct {
	Partition int32
	Offset    int64
	Event     events.Event
	UUID      string
	// Decoded is false for a message that is not an event of the contract.
	Decoded bool
}

// Compared is what CompareStrategy measures: the stores after a strategy's run.
// Stack.CompareInput reads it; CompareStrategy judges it without a server.
type Compared struct {
	// Orders is the orders topic, every message.
	Orders []Record
	// Injected are the ids of the garbage the timeline published.
	Injected map[string]bool
	// Committed is the payment group's committed offset per partition of the
	// orders topic (absent: nothing committed).
	Committed map[int32]int64
	// Processed is the payment group's inbox: message id → processed_at.
	Processed map[string]time.Time
	// Poison are the ids of the messages in the payment poison topic.
	Poison []string
	// Held are the ids in parked and requeue tables: id → "parked" or "requeued".
	Held map[string]string
	// Orders' rows, and the accepted requests (load and timeline).
	Rows     map[string]OrderRow
	Requests []Request
	// Healthy says whether a customer is healthy (not cursed, not flaky).
	Healthy func(customer string) bool
	// Repaired is the end of the last fault.
	Repaired time.Time
}

// eventKey is one event of an order: copies of it (a forwarder's resend, a
// requeue's republication) share it.
type eventKey struct {
	order   string
	version int
}

// CompareStrategy fills the measured fields of row from c (see StrategyRow for
// the definitions). The checker's fields (Double, MoneyDelta, ...) are the
// caller's.
func CompareStrategy(row *StrategyRow, c Compared) {
	type state struct {
		processed time.Time // earliest processing of a copy; zero: never
		poisoned  bool
		held      string
		pending   bool
	}
	byEvent := map[eventKey]*state{}
	poison := map[string]bool{}
	for _, id := range c.Poison {
		poison[id] = true
	}
	row.Poisoned = len(c.Poison)
	for _, kind := range c.Held {
		switch kind {
		case "parked":
			row.Parked++
		default:
			row.Requeued++
		}
	}
	for _, r := range c.Orders {
		if !r.Decoded || c.Injected[r.UUID] {
			continue
		}
		k := eventKey{r.Event.OrderID, r.Event.OrderVersion}
		st := byEvent[k]
		if st == nil {
			st = &state{}
			byEvent[k] = st
		}
		if at, ok := c.Processed[r.UUID]; ok && (st.processed.IsZero() || at.Before(st.processed)) {
			st.processed = at
		}
		st.poisoned = st.poisoned || poison[r.UUID]
		if h := c.Held[r.UUID]; h != "" {
			st.held = h
		}
		if at, ok := c.Committed[r.Partition]; !ok || r.Offset >= at {
			st.pending = true
		}
	}
	row.Events = len(byEvent)
	versions := map[string][]int{}
	for k, st := range byEvent {
		versions[k.order] = append(versions[k.order], k.version)
		if st.poisoned {
			row.PoisonedEvents++
		}
		switch {
		case !st.processed.IsZero():
			row.Processed++
		case st.poisoned, st.held != "":
		case st.pending:
			row.Pending++
		default:
			row.Lost++
		}
	}
	for order, vs := range versions {
		sort.Ints(vs)
		if outOfOrder(vs, func(v int) time.Time { return byEvent[eventKey{order, v}].processed }) {
			row.OutOfOrderKeys++
		}
	}
	measureOrders(row, c)
}

// outOfOrder reports whether a later version was processed while an earlier
// one was not yet (processed later, or never); processed(v) is zero for never.
func outOfOrder(versions []int, processed func(int) time.Time) bool {
	for i, a := range versions {
		pa := processed(a)
		for _, b := range versions[i+1:] {
			pb := processed(b)
			if !pb.IsZero() && (pa.IsZero() || pa.After(pb)) {
				return true
			}
		}
	}
	return false
}

// measureOrders: end states, healthy p99 and recovery.
func measureOrders(row *StrategyRow, c Compared) {
	var latencies []float64 // ms; +Inf: never terminal
	recovered, last := true, c.Repaired
	for _, q := range c.Requests {
		if q.Outcome != Accepted {
			continue
		}
		row.Accepted++
		o, ok := c.Rows[q.OrderID]
		terminal := ok && o.terminal()
		switch {
		case !terminal:
			row.NotTerminal++
		case o.Status == "CONFIRMED":
			row.Confirmed++
		default:
			row.Cancelled++
		}
		timedOut := terminal && o.CancelReason == "payment_timeout"
		if timedOut {
			row.TimedOut++
		}
		if !c.Healthy(q.CustomerID) {
			continue
		}
		if timedOut {
			row.HealthyTimedOut++
		}
		if terminal {
			latencies = append(latencies, float64(o.UpdatedAt.Sub(q.SentAt).Milliseconds()))
		} else {
			latencies = append(latencies, math.Inf(1))
		}
		if q.SentAt.Before(c.Repaired) {
			if !terminal || timedOut {
				recovered = false
			} else if o.UpdatedAt.After(last) {
				last = o.UpdatedAt
			}
		}
	}
	if p := percentile(latencies, 0.99); !math.IsInf(p, 1) && len(latencies) > 0 {
		ms := int64(p)
		row.HealthyP99Ms = &ms
	}
	if recovered && !c.Repaired.IsZero() {
		s := math.Round(last.Sub(c.Repaired).Seconds()*10) / 10
		row.RecoveryS = &s
	}
}

// percentile returns the q-quantile (nearest rank) of xs; 0 for none.
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64{}, xs...)
	sort.Float64s(s)
	return s[max(0, int(math.Ceil(q*float64(len(s))))-1)]
}

// CompareInput reads what CompareStrategy needs from the stack's stores: the
// orders topic with offsets, the payment group's committed offsets and inbox,
// the payment poison topic, every parked or requeue table of the payment
// database (found by name, see heldTables) and the order rows. requests are the
// accepted requests, healthy the customers' classification.
func (s *Stack) CompareInput(injected map[string]bool, requests []Request, healthy func(string) bool, repaired time.Time) (Compared, error) {
	c := Compared{Injected: injected, Requests: requests, Healthy: healthy, Repaired: repaired, Held: map[string]string{}}
	var err error
	if c.Orders, err = s.ReadRecords(s.Topics.Orders); err != nil {
		return c, err
	}
	_, group := s.Groups()
	if c.Committed, err = s.CommittedOffsets(group, s.Topics.Orders); err != nil {
		return c, err
	}
	if c.Processed, err = inbox(s.PaymentDB, group); err != nil {
		return c, err
	}
	poisoned, err := s.ReadRecords(s.Topics.PaymentPoison)
	if err != nil {
		return c, err
	}
	for _, r := range poisoned {
		c.Poison = append(c.Poison, r.UUID)
	}
	tables, err := heldTables(s.PaymentDB)
	if err != nil {
		return c, err
	}
	for _, t := range tables {
		rows, err := s.PaymentDB.Query(fmt.Sprintf("SELECT `%s` FROM `%s`", t.idColumn, t.name))
		if err != nil {
			return c, fmt.Errorf("reading %s: %w", t.name, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return c, err
			}
			c.Held[id] = t.kind
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return c, err
		}
	}
	c.Rows, err = s.orderRows()
	return c, err
}

func inbox(db *sql.DB, group string) (map[string]time.Time, error) {
	rows, err := db.Query("SELECT message_id, processed_at FROM processed_messages WHERE consumer_group = ?", group)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		out[id] = at
	}
	return out, rows.Err()
}

// heldTable is a table of the payment database that holds messages for a
// later replay.
type heldTable struct{ name, idColumn, kind string }

// heldTables finds the tables of db where a strategy keeps messages aside:
// a name with "park" (kind parked) or "requeue", "retry", "delay" (kind
// requeued), and a message id column (message_id, message_uuid or uuid). The
// outbox's own parked rows (outbox_parked, ADR 22: events the service could
// not publish) are not consumer messages and are left out. Finding them by name
// lets the comparison count the strategies merged after it without knowing
// their schemas; a strategy whose table is named otherwise shows up as lost.
func heldTables(db *sql.DB) ([]heldTable, error) {
	rows, err := db.Query(`SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = DATABASE() AND column_name IN ('message_id', 'message_uuid', 'uuid')
		ORDER BY table_name, FIELD(column_name, 'message_id', 'message_uuid', 'uuid')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []heldTable
	seen := map[string]bool{}
	for rows.Next() {
		var name, column string
		if err := rows.Scan(&name, &column); err != nil {
			return nil, err
		}
		if seen[name] || name == "outbox_parked" {
			continue
		}
		seen[name] = true
		lower := strings.ToLower(name)
		switch {
		case strings.Contains(lower, "park"):
			out = append(out, heldTable{name, column, "parked"})
		case strings.Contains(lower, "requeue"), strings.Contains(lower, "retry"), strings.Contains(lower, "delay"):
			out = append(out, heldTable{name, column, "requeued"})
		}
	}
	return out, rows.Err()
}

// CommittedOffsets returns group's committed offset for each partition of
// topic that has one.
func (s *Stack) CommittedOffsets(group, topic string) (map[int32]int64, error) {
	client, err := sarama.NewClient(s.Kafka.Brokers, s.Kafka.ConsumerConfig())
	if err != nil {
		return nil, err
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, err
	}
	partitions, err := client.Partitions(topic)
	if err != nil {
		return nil, err
	}
	committed, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: partitions})
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, p := range partitions {
		if b := committed.GetBlock(topic, p); b != nil && b.Offset >= 0 {
			out[p] = b.Offset
		}
	}
	return out, nil
}

// ReadRecords returns every message of topic with its partition and offset,
// decoded where it is an event of the contract.
func (s *Stack) ReadRecords(topic string) ([]Record, error) {
	var out []Record
	err := readTopic(s.Kafka, topic, func(km *sarama.ConsumerMessage) error {
		m, err := kafka.Marshaler(false).Unmarshal(km)
		if err != nil {
			return err
		}
		r := Record{Partition: km.Partition, Offset: km.Offset, UUID: m.UUID}
		if e, err := events.Decode(m); err == nil {
			r.Event, r.Decoded = e, true
		}
		out = append(out, r)
		return nil
	})
	return out, err
}
