package harness

import (
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/events"
)

// event encodes an event of order at version v, as the services would.
func event(t *testing.T, order string, v int, p events.Payload) *message.Message {
	t.Helper()
	m, err := events.Encode(events.Event{ID: watermill.NewUUID(), OrderID: order, OrderVersion: v,
		OccurredAt: time.Now(), Payload: p})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// violations returns the report's violations that start with prefix.
func violations(r *Report, prefix string) []string {
	var out []string
	for _, v := range r.Violations {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return out
}

// TestOrderingInvariant (I7): the first appearance of each version of an order
// must follow the first appearance of every lower version on its topic.
func TestOrderingInvariant(t *testing.T) {
	t.Parallel()
	placed := events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 100, Currency: "EUR"}}
	cancelled := events.OrderCancelled{Reason: "cancelled_by_customer"}
	injected := event(t, "x", 2, cancelled)
	tests := []struct {
		name string
		// build returns the topic's messages in offset order.
		build          func() []*message.Message
		skip           map[string]bool
		wantOutOfOrder int
	}{
		{"versions in order", func() []*message.Message {
			return []*message.Message{event(t, "a", 1, placed), event(t, "a", 2, cancelled)}
		}, nil, 0},
		{"an old version delivered again later is a duplicate, not disorder", func() []*message.Message {
			p := event(t, "a", 1, placed)
			return []*message.Message{p, event(t, "a", 2, cancelled), p.Copy()}
		}, nil, 0},
		{"two orders interleaved, each in order", func() []*message.Message {
			return []*message.Message{event(t, "a", 1, placed), event(t, "b", 1, placed),
				event(t, "b", 2, cancelled), event(t, "a", 2, cancelled)}
		}, nil, 0},
		{"version 2 before version 1", func() []*message.Message {
			return []*message.Message{event(t, "a", 2, cancelled), event(t, "a", 1, placed)}
		}, nil, 1},
		{"version 3 overtakes version 2 of one order only", func() []*message.Message {
			return []*message.Message{event(t, "a", 1, placed), event(t, "b", 1, placed), event(t, "a", 3, cancelled),
				event(t, "a", 2, cancelled), event(t, "b", 2, cancelled)}
		}, nil, 1},
		{"what is not an event is left to I6", func() []*message.Message {
			return []*message.Message{event(t, "a", 2, cancelled), message.NewMessage(watermill.NewUUID(), []byte("\x00 junk"))}
		}, nil, 0},
		{"injected poison is left to I6", func() []*message.Message {
			return []*message.Message{event(t, "x", 3, cancelled), injected}
		}, map[string]bool{injected.UUID: true}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := &Snapshot{Orders: map[string]OrderRow{}, Events: []TopicMessages{{Topic: "orders", Messages: tt.build()}}}
			r := Evaluate(&History{}, snap, CheckConfig{ExpectedPoison: tt.skip})
			if r.OutOfOrder != tt.wantOutOfOrder || len(violations(r, "I7")) != tt.wantOutOfOrder {
				t.Fatalf("out_of_order = %d, I7 violations %q; want %d", r.OutOfOrder, violations(r, "I7"), tt.wantOutOfOrder)
			}
		})
	}
}

// TestExtraOrdersInvariant (I8): orders that no request got a 201 for are
// reported; they are violations when the client retries with keys, or when
// there are more of them than requests without a definite answer.
func TestExtraOrdersInvariant(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		outcomes     []Outcome // the load's requests; accepted ones created orders "accepted-<i>"
		extra        int       // orders nobody got a 201 for
		noExtra      bool
		wantExtra    int
		wantViolated bool
	}{
		{"every order has its 201", []Outcome{Accepted, Accepted}, 0, false, 0, false},
		{"a timed-out request may have created one: reported only", []Outcome{Accepted, Indeterminate}, 1, false, 1, false},
		{"a 503 whose commit went through: reported only", []Outcome{Accepted, Unavailable}, 1, false, 1, false},
		{"more than the requests without an answer", []Outcome{Accepted, Indeterminate}, 2, false, 2, true},
		{"none may exist when the client retries with keys", []Outcome{Accepted, Indeterminate}, 1, true, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &History{}
			snap := &Snapshot{Orders: map[string]OrderRow{}}
			for i, o := range tt.outcomes {
				q := Request{Outcome: o}
				if o == Accepted {
					q.OrderID = "accepted-" + string(rune('a'+i))
					snap.Orders[q.OrderID] = OrderRow{Status: "CANCELLED", CancelReason: "payment_failed: unknown_customer"}
				}
				h.Requests = append(h.Requests, q)
			}
			for i := range tt.extra {
				snap.Orders["extra-"+string(rune('a'+i))] = OrderRow{Status: "CANCELLED", CancelReason: "payment_failed: unknown_customer"}
			}
			r := Evaluate(h, snap, CheckConfig{NoExtraOrders: tt.noExtra})
			got := violations(r, "I8")
			if r.Extra != tt.wantExtra || (len(got) > 0) != tt.wantViolated {
				t.Fatalf("extra_orders = %d, I8 violations %q; want %d extra, violated %v", r.Extra, got, tt.wantExtra, tt.wantViolated)
			}
			if tt.wantExtra > 0 && len(r.Notes) == 0 {
				t.Fatalf("extra orders not reported in the notes")
			}
		})
	}
}

// TestServerErrors: every attempt answered with a 5xx other than 503 counts,
// retried or not, and so does a cancellation whose last answer was one; with
// NoServerErrors they are a violation.
func TestServerErrors(t *testing.T) {
	t.Parallel()
	h := &History{
		Requests: []Request{
			{Outcome: Accepted, OrderID: "a", AttemptLog: []string{"500", "503", "201 replayed"}},
			{Outcome: Unavailable, AttemptLog: []string{"503", "503"}},
			{Outcome: Indeterminate, AttemptLog: []string{"dial tcp: connection refused", "502"}},
			{Outcome: Accepted, OrderID: "b", AttemptLog: []string{"201"}},
		},
		Cancels: map[int]int{200: 3, 500: 1, 503: 2},
	}
	if got := h.ServerErrors(); got != 3 {
		t.Errorf("ServerErrors() = %d, want 3 (500 and 502 of the orders, one cancellation's 500)", got)
	}
	snap := &Snapshot{Orders: map[string]OrderRow{}}
	for _, no := range []bool{false, true} {
		r := Evaluate(h, snap, CheckConfig{NoServerErrors: no})
		if r.ServerErrors != 3 {
			t.Errorf("NoServerErrors=%v: report counts %d server errors, want 3", no, r.ServerErrors)
		}
		if got := len(violations(r, "3 answer(s) with a 5xx")); got != map[bool]int{false: 0, true: 1}[no] {
			t.Errorf("NoServerErrors=%v: %d violation(s) about server errors: %v", no, got, r.Violations)
		}
	}
}
