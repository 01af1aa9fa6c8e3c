package app_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// outcomeLog is an app.Outcomes that records what it is told.
type outcomeLog []string

func (l *outcomeLog) SagaOutcome(o string) { *l = append(*l, o) }

// The use cases tell the Outcomes port each outcome once, after the change
// succeeded: duplicate and stale reports, and failed changes, tell nothing.
func TestUseCasesTellTheirOutcomes(t *testing.T) {
	t.Parallel()
	svc, _, _ := newService(t)
	var told outcomeLog
	svc.Outcomes = &told
	ctx := context.Background()
	confirm := func(id string) error {
		return svc.ConfirmPayment(ctx, app.ConfirmPayment{OrderID: id, Version: 1, AmountCents: 1250, Currency: "EUR"})
	}

	a := placeOrder(t, svc)
	if err := confirm(a.ID); err != nil {
		t.Fatal(err)
	}
	if err := confirm(a.ID); err != nil { // the same report again: a no-op
		t.Fatal(err)
	}
	if _, err := svc.CancelOrder(ctx, a.ID, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CancelOrder(ctx, a.ID, "", nil); err != nil { // cancelled already
		t.Fatal(err)
	}
	if err := svc.RecordRefund(ctx, app.RecordRefund{OrderID: a.ID, Version: 3}); err != nil {
		t.Fatal(err)
	}
	b := placeOrder(t, svc)
	if err := svc.FailPayment(ctx, app.FailPayment{OrderID: b.ID, Version: 1, Reason: contract.ReasonInsufficientFunds}); err != nil {
		t.Fatal(err)
	}
	c := placeOrder(t, svc)
	if err := svc.ConfirmPayment(ctx, app.ConfirmPayment{OrderID: c.ID, Version: 1, AmountCents: 1, Currency: "EUR"}); err == nil {
		t.Fatal("a mismatching payment was accepted")
	}
	svc.Now = func() time.Time { return t0.Add(time.Hour) }
	if n, err := svc.CancelStalePending(ctx, time.Minute, 10); err != nil || n != 1 {
		t.Fatalf("CancelStalePending = %d, %v", n, err)
	}
	if err := confirm("no-such-order"); err == nil {
		t.Fatalf("a report for an unknown order: %v", err)
	}
	want := []string{app.OutcomeConfirmed, app.OutcomeCancelledByCustomer, app.OutcomeRefunded,
		app.OutcomeCancelledPaymentFailed, app.OutcomeCancelledPaymentTimeout}
	if !slices.Equal(told, want) {
		t.Fatalf("told %v, want %v", told, want)
	}
}

// An outcome is told through AfterCommit: a change whose transaction never
// commits (a dry run) tells nothing.
func TestOutcomesWaitForTheCommit(t *testing.T) {
	t.Parallel()
	svc, _, _ := newService(t)
	var told outcomeLog
	svc.Outcomes = &told
	var pending []func()
	svc.AfterCommit = func(_ context.Context, fn func()) { pending = append(pending, fn) }
	a := placeOrder(t, svc)
	if err := svc.ConfirmPayment(context.Background(), app.ConfirmPayment{OrderID: a.ID, Version: 1, AmountCents: 1250, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if len(told) != 0 || len(pending) != 1 {
		t.Fatalf("told %v before the commit (%d waiting), want nothing told and 1 waiting", told, len(pending))
	}
	pending[0]() // the commit
	if !slices.Equal(told, []string{app.OutcomeConfirmed}) {
		t.Fatalf("told %v after the commit, want confirmed", told)
	}
}
