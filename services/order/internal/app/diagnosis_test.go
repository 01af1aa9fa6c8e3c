package app_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

type fixedHolds []app.Hold

func (f fixedHolds) Holds(context.Context, string) ([]app.Hold, error) { return f, nil }

type fixedPayment struct {
	report app.PaymentReport
	err    error
}

func (f fixedPayment) Report(context.Context, string) (app.PaymentReport, error) {
	return f.report, f.err
}

// TestDiagnose: the cause is the first thing on the order's path that holds
// it, in the path's order, and a done order has none.
func TestDiagnose(t *testing.T) {
	outbox := app.Hold{Code: app.HoldOutboxBacklog, Service: "order"}
	stopped := app.Hold{Code: "consumer_stopped", Service: "order"}
	parkedThere := app.Hold{Code: "key_parked", Service: "payment"}
	poisonedEntry := func(id string, at time.Duration) app.TimelineEntry {
		return app.TimelineEntry{Topic: "payment-poison", Offset: 7, At: t0.Add(at), EventID: "e-1", EventType: "order.placed",
			Poisoned: &app.Poisoned{ReasonCode: "invalid_event", FromTopic: "orders"}, OrderID: id}
	}
	replayed := func(id string, at time.Duration) app.TimelineEntry {
		return app.TimelineEntry{Topic: "orders", Offset: 9, At: t0.Add(at), EventID: "e-1", EventType: "order.placed",
			ReplayedAt: "now", OrderID: id}
	}
	cases := []struct {
		name      string
		status    domain.Status
		own       []app.Hold
		payment   fixedPayment
		timeline  func(id string) []app.TimelineEntry
		wantStage string
		wantCause string
	}{
		{name: "done", status: domain.StatusConfirmed, own: []app.Hold{outbox}, wantStage: app.StageDone},
		{name: "own outbox first", own: []app.Hold{stopped, outbox}, payment: fixedPayment{report: app.PaymentReport{Holds: []app.Hold{parkedThere}}},
			wantStage: app.StageAwaitingPayment, wantCause: app.HoldOutboxBacklog},
		{name: "payment unreachable", payment: fixedPayment{err: errors.New("connection refused")},
			wantStage: app.StageAwaitingPayment, wantCause: app.CausePaymentUnreachable},
		{name: "payment side before the order's consumers", own: []app.Hold{stopped},
			payment:   fixedPayment{report: app.PaymentReport{Holds: []app.Hold{parkedThere}}},
			wantStage: app.StageAwaitingPayment, wantCause: "key_parked"},
		{name: "poisoned", own: []app.Hold{stopped}, timeline: func(id string) []app.TimelineEntry { return []app.TimelineEntry{poisonedEntry(id, 0)} },
			wantStage: app.StageAwaitingPayment, wantCause: app.CausePoisoned},
		{name: "replayed after it was poisoned", timeline: func(id string) []app.TimelineEntry {
			return []app.TimelineEntry{poisonedEntry(id, 0), replayed(id, time.Second)}
		}, wantStage: app.StageAwaitingPayment, wantCause: app.CauseNotConsumedYet},
		{name: "poisoned again after its replay", timeline: func(id string) []app.TimelineEntry {
			return []app.TimelineEntry{poisonedEntry(id, 0), replayed(id, time.Second), poisonedEntry(id, 2*time.Second)}
		}, wantStage: app.StageAwaitingPayment, wantCause: app.CausePoisoned},
		{name: "the order's consumer", own: []app.Hold{stopped}, wantStage: app.StageAwaitingPayment, wantCause: "consumer_stopped"},
		{name: "nothing holds it", wantStage: app.StageAwaitingPayment, wantCause: app.CauseNotConsumedYet},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svc, orders, tl := newService(t)
			o := placeOrder(t, svc)
			if c.status != "" {
				orders.orders[o.ID].Status = c.status
			}
			if c.timeline != nil {
				tl.entries = c.timeline(o.ID)
			}
			svc.Diagnosis = app.DiagnosisConfig{Holds: fixedHolds(c.own), Payment: c.payment, PaymentTimeout: time.Minute,
				PoisonTopics: map[string]string{"payment-poison": "payment"}}
			d, err := svc.Diagnose(context.Background(), o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d.Stage != c.wantStage {
				t.Errorf("stage %q, want %q", d.Stage, c.wantStage)
			}
			switch {
			case c.wantCause == "" && d.Cause != nil:
				t.Errorf("cause %+v, want none", *d.Cause)
			case c.wantCause != "" && (d.Cause == nil || d.Cause.Code != c.wantCause):
				t.Errorf("cause %+v, want %s", d.Cause, c.wantCause)
			case c.wantCause == app.CausePoisoned && !strings.HasPrefix(d.Cause.Remedy, "fix the cause, then payment poison replay 7"):
				t.Errorf("remedy %q, want the payment service's replay of offset 7", d.Cause.Remedy)
			}
		})
	}
}

// TestDiagnoseRefundFailed: a refund the payment service could not make is
// the order's cause though the order is done.
func TestDiagnoseRefundFailed(t *testing.T) {
	svc, orders, _ := newService(t)
	o := placeOrder(t, svc)
	stored := orders.orders[o.ID]
	stored.Status, stored.Paid, stored.RefundFailure = domain.StatusCancelled, true, "account_not_found"
	d, err := svc.Diagnose(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Stage != app.StageDone || d.Cause == nil || d.Cause.Code != app.CauseRefundFailed {
		t.Fatalf("diagnosis %+v, want done with refund_failed", d)
	}
}

// fixedGroups answers every position with its own.
type fixedGroups struct {
	app.GroupPosition
	asked *string // the group asked, "group topic/partition"
}

func (f fixedGroups) Position(_ context.Context, group, topic string, partition int32) (app.GroupPosition, error) {
	*f.asked = fmt.Sprintf("%s %s/%d", group, topic, partition)
	return f.GroupPosition, nil
}

// TestDiagnoseInKafka: when nothing holds an order, its last event's
// consumer group is asked where it stands: behind the event (with or without
// live members), or past it with no payment (the payment timeout is all that
// is left); an answer already on the payments topic asks the order group.
func TestDiagnoseInKafka(t *testing.T) {
	placed := app.TimelineEntry{Topic: "orders", Partition: 2, Offset: 40, EventID: "e-1", EventType: "order.placed"}
	charged := app.TimelineEntry{Topic: "payments", Partition: 1, Offset: 9, EventID: "e-2", EventType: "payment.completed"}
	cases := []struct {
		name          string
		entries       []app.TimelineEntry
		paymentStatus string
		position      app.GroupPosition
		wantAsked     string
		wantCause     string
		wantRemedy    string
	}{
		{"behind the event, live members", []app.TimelineEntry{placed}, "", app.GroupPosition{Committed: 38, Members: 2},
			"payment-service orders/2", app.CauseNotConsumedYet, "wait: the consumers take it in turn"},
		{"behind the event, no member", []app.TimelineEntry{placed}, "", app.GroupPosition{Committed: -1},
			"payment-service orders/2", app.CauseNotConsumedYet, "start the payment service: group payment-service has no live member"},
		{"consumed without an answer", []app.TimelineEntry{placed}, "", app.GroupPosition{Committed: 41, Members: 1},
			"payment-service orders/2", app.CausePaymentTimeoutPending, "wait: nothing else will answer; the payment timeout cancels it at "},
		{"consumed, answered, the answer not consumed", []app.TimelineEntry{placed, charged}, "CHARGED", app.GroupPosition{Committed: 9, Members: 1},
			"order-service payments/1", app.CauseNotConsumedYet, "wait: the consumers take it in turn"},
		{"no entry yet", nil, "", app.GroupPosition{}, "", app.CauseNotConsumedYet, "wait: the consumers take it in turn"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svc, _, tl := newService(t)
			o := placeOrder(t, svc)
			for _, e := range c.entries {
				e.OrderID = o.ID
				tl.entries = append(tl.entries, e)
			}
			var asked string
			svc.Diagnosis = app.DiagnosisConfig{Holds: fixedHolds(nil), PaymentTimeout: time.Minute,
				Payment:    fixedPayment{report: app.PaymentReport{PaymentStatus: c.paymentStatus, ConsumerGroup: "payment-service"}},
				ConsumedBy: map[string]string{"orders": "payment", "payments": "order"}, Group: "order-service",
				Groups: fixedGroups{GroupPosition: c.position, asked: &asked}}
			d, err := svc.Diagnose(context.Background(), o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if asked != c.wantAsked || d.Cause == nil || d.Cause.Code != c.wantCause || !strings.HasPrefix(d.Cause.Remedy, c.wantRemedy) {
				t.Fatalf("asked %q, cause %+v; want asked %q, cause %s with remedy %q...", asked, d.Cause, c.wantAsked, c.wantCause, c.wantRemedy)
			}
		})
	}
}

type fixedNotDone struct {
	ids    []string
	oldest time.Time
}

func (f fixedNotDone) NotDoneBefore(_ context.Context, _ time.Time, limit int) ([]string, error) {
	return f.ids[:min(limit, len(f.ids))], nil
}
func (f fixedNotDone) OldestNotDone(context.Context) (time.Time, error) { return f.oldest, nil }

// TestStuckOrders: the orders not done are diagnosed and grouped by cause,
// the largest group first; the gauge's age is measured from the oldest.
func TestStuckOrders(t *testing.T) {
	svc, _, tl := newService(t)
	var ids []string
	for range 3 {
		ids = append(ids, placeOrder(t, svc).ID)
	}
	tl.entries = []app.TimelineEntry{{OrderID: ids[1], Topic: "payment-poison", EventID: "e-9", At: t0,
		Poisoned: &app.Poisoned{ReasonCode: "invalid_event", FromTopic: "orders"}}}
	svc.Diagnosis = app.DiagnosisConfig{Holds: fixedHolds(nil), Payment: fixedPayment{}, PaymentTimeout: time.Minute,
		NotDone: fixedNotDone{ids: ids, oldest: t0.Add(-time.Hour)}, PoisonTopics: map[string]string{"payment-poison": "payment"}}
	groups, err := svc.StuckOrders(context.Background(), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0].Cause != app.CauseNotConsumedYet || len(groups[0].Orders) != 2 ||
		groups[1].Cause != app.CausePoisoned || groups[1].Orders[0].Order.ID != ids[1] {
		t.Fatalf("groups %+v, want 2 not consumed yet, then %s poisoned", groups, ids[1])
	}
	if _, err := svc.StuckOrders(context.Background(), time.Minute, app.MaxStuck+1); err == nil {
		t.Fatal("a limit over MaxStuck was accepted")
	}
	if age, err := svc.OldestNotDoneAge(context.Background()); err != nil || age != time.Hour {
		t.Fatalf("OldestNotDoneAge = %s, %v; want 1h", age, err)
	}
}
