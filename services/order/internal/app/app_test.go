package app_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// memOrders is an in-memory app.Orders whose Update works on a copy and keeps it
// (and the events fn returns) only if fn succeeds, like the repository's
// transaction. outbox collects the events of committed changes.
type memOrders struct {
	orders  map[string]*domain.Order
	outbox  []events.Event
	expired int // keys DeleteExpiredKeys still has to delete
}

func (m *memOrders) Add(_ context.Context, o *domain.Order, evts ...events.Event) error {
	c := *o
	m.orders[o.ID] = &c
	m.outbox = append(m.outbox, evts...)
	return nil
}

func (m *memOrders) Update(_ context.Context, id string, fn func(*domain.Order) ([]events.Event, error)) error {
	o, ok := m.orders[id]
	if !ok {
		return domain.ErrNotFound
	}
	c := *o
	evts, err := fn(&c)
	if err != nil {
		return err
	}
	m.orders[id] = &c
	m.outbox = append(m.outbox, evts...)
	return nil
}

func (m *memOrders) Get(_ context.Context, id string) (*domain.Order, error) {
	if o, ok := m.orders[id]; ok {
		c := *o
		return &c, nil
	}
	return nil, domain.ErrNotFound
}

func (m *memOrders) ListByCustomer(context.Context, string, int) ([]*domain.Order, error) {
	return nil, nil
}

func (m *memOrders) PendingBefore(_ context.Context, t time.Time, limit int) ([]string, error) {
	var ids []string
	for id, o := range m.orders {
		if o.Status == domain.StatusPending && o.CreatedAt.Before(t) && len(ids) < limit {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// AddOnce and UpdateOnce ignore the key: these tests are about the use cases;
// the key's rules are tested against MariaDB (adapters/mariadb/keys_test.go)
// and over HTTP (adapters/http/idempotency_test.go).
func (m *memOrders) AddOnce(ctx context.Context, _ app.KeyClaim, o *domain.Order, evts ...events.Event) (*app.StoredKey, error) {
	return nil, m.Add(ctx, o, evts...)
}

func (m *memOrders) UpdateOnce(ctx context.Context, _ app.KeyClaim, id string, fn func(*domain.Order) ([]events.Event, error)) (*app.StoredKey, error) {
	return nil, m.Update(ctx, id, fn)
}

func (m *memOrders) DeleteExpiredKeys(_ context.Context, _ time.Time, limit int) (int, error) {
	n := min(limit, m.expired)
	m.expired -= n
	return n, nil
}

type memTimeline struct{ entries []app.TimelineEntry }

func (m *memTimeline) Record(_ context.Context, e app.TimelineEntry) error {
	m.entries = append(m.entries, e)
	return nil
}

func (m *memTimeline) ForOrder(_ context.Context, id string) ([]app.TimelineEntry, error) {
	var out []app.TimelineEntry
	for _, e := range m.entries {
		if e.OrderID == id {
			out = append(out, e)
		}
	}
	return out, nil
}

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func newService(t *testing.T) (*app.Service, *memOrders, *memTimeline) {
	t.Helper()
	orders, tl := &memOrders{orders: map[string]*domain.Order{}}, &memTimeline{}
	svc := app.New(orders, tl, slog.New(slog.DiscardHandler))
	svc.Now = func() time.Time { return t0 }
	return svc, orders, tl
}

func placeOrder(t *testing.T, svc *app.Service) *domain.Order {
	t.Helper()
	res, err := svc.PlaceOrder(context.Background(), app.PlaceOrder{CustomerID: "c-1", AmountCents: 1250, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	return res.Order
}

// wantAppError checks that err is an *apperr.Error with code and reason.
func wantAppError(t *testing.T, err error, code apperr.Code, reason string) {
	t.Helper()
	ae := apperr.As(err)
	if ae == nil || ae.Code != code || ae.Reason != reason {
		t.Fatalf("error = %v, want an apperr.Error with code %q and reason %q", err, code, reason)
	}
}

// TestPlaceOrder: a valid order is stored PENDING at v1 with its OrderPlaced
// event (same amount, currency, customer, correlation, version); an invalid one
// is CodeInvalid naming every bad field, and nothing is stored.
func TestPlaceOrder(t *testing.T) {
	t.Parallel()
	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		svc, orders, _ := newService(t)
		res, err := svc.PlaceOrder(context.Background(), app.PlaceOrder{CustomerID: "c-1", AmountCents: contract.MaxAmountCents,
			Currency: "EUR", CorrelationID: "req-1"})
		if err != nil {
			t.Fatal(err)
		}
		o := orders.orders[res.Order.ID]
		if o == nil || o.Status != domain.StatusPending || o.Version != 1 || res.Replayed {
			t.Fatalf("stored %+v (replayed %v), want a PENDING order at v1", o, res.Replayed)
		}
		if len(orders.outbox) != 1 {
			t.Fatalf("outbox holds %d events, want 1", len(orders.outbox))
		}
		e := orders.outbox[0]
		want := events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: contract.MaxAmountCents, Currency: "EUR"}}
		if e.Payload != want || e.OrderID != o.ID || e.OrderVersion != 1 || e.CorrelationID != "req-1" || e.Validate() != nil {
			t.Fatalf("event %+v, want a valid OrderPlaced %+v for %s v1 correlated req-1", e, want, o.ID)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		svc, orders, _ := newService(t)
		_, err := svc.PlaceOrder(context.Background(), app.PlaceOrder{CustomerID: "", AmountCents: contract.MaxAmountCents + 1, Currency: "eur"})
		wantAppError(t, err, apperr.CodeInvalid, "")
		fields := apperr.As(err).Fields
		for _, f := range []string{"customer_id", "amount_cents", "currency"} {
			if fields[f] == "" {
				t.Errorf("no error for field %s in %v", f, fields)
			}
		}
		if len(orders.orders) != 0 || len(orders.outbox) != 0 {
			t.Fatalf("an invalid order stored %d orders, %d events", len(orders.orders), len(orders.outbox))
		}
	})
	t.Run("malformed idempotency key", func(t *testing.T) {
		t.Parallel()
		svc, orders, _ := newService(t)
		_, err := svc.PlaceOrder(context.Background(), app.PlaceOrder{CustomerID: "c-1", AmountCents: 1, Currency: "EUR",
			Idempotency: &app.Idempotency{Key: "no spaces", Scope: "POST /orders"}})
		wantAppError(t, err, app.CodeInvalidKey, "")
		if len(orders.orders) != 0 {
			t.Fatal("stored an order despite a malformed key")
		}
	})
}

// TestUnknownOrder: every use case addressed to an unknown order says
// CodeNotFound.
func TestUnknownOrder(t *testing.T) {
	t.Parallel()
	svc, _, _ := newService(t)
	ctx := context.Background()
	_, err := svc.Order(ctx, "nope")
	wantAppError(t, err, apperr.CodeNotFound, "")
	_, err = svc.CancelOrder(ctx, "nope", "", nil)
	wantAppError(t, err, apperr.CodeNotFound, "")
	_, err = svc.OrderTimeline(ctx, "nope")
	wantAppError(t, err, apperr.CodeNotFound, "")
	_, err = svc.OrdersOfCustomer(ctx, "")
	wantAppError(t, err, apperr.CodeInvalid, "")
	_, err = svc.OrdersOfCustomer(ctx, "not a customer id")
	wantAppError(t, err, apperr.CodeInvalid, "")
}

// TestOrdersOfCustomerRejectsInvalidIDs: a customer id that NewOrder would
// refuse is a 422, not an empty list: the document describes customer_id with
// the same rule, and Schemathesis' negative_data_rejection check holds the
// server to it.
func TestOrdersOfCustomerRejectsInvalidIDs(t *testing.T) {
	t.Parallel()
	svc, _, _ := newService(t)
	ctx := context.Background()
	for _, id := range []string{"-c", "c 1", "ก ำกำ", strings.Repeat("c", 65)} {
		_, err := svc.OrdersOfCustomer(ctx, id)
		wantAppError(t, err, apperr.CodeInvalid, "")
	}
	if list, err := svc.OrdersOfCustomer(ctx, "c-1"); err != nil || len(list) != 0 {
		t.Fatalf("a valid id without orders: %v, %v; want an empty list", list, err)
	}
}

// TestPaymentReports: each typed command the Kafka adapter sends, from the
// state it applies to, and the errors of reports that cannot apply.
func TestPaymentReports(t *testing.T) {
	t.Parallel()
	confirm := func(v int) func(context.Context, *app.Service, string) error {
		return func(ctx context.Context, svc *app.Service, id string) error {
			return svc.ConfirmPayment(ctx, app.ConfirmPayment{OrderID: id, Version: v, AmountCents: 1250, Currency: "EUR"})
		}
	}
	cancel := func(ctx context.Context, svc *app.Service, id string) error {
		_, err := svc.CancelOrder(ctx, id, "", nil)
		return err
	}
	tests := []struct {
		name string
		// before brings the order (placed at v1) into the state the report answers.
		before    []func(context.Context, *app.Service, string) error
		report    func(context.Context, *app.Service, string) error
		wantCode  apperr.Code
		wantWhy   string
		wantOrder domain.Order // Status, CancelReason, Paid, Refunded, RefundFailure, Version
	}{
		{name: "confirm", report: confirm(1),
			wantOrder: domain.Order{Status: domain.StatusConfirmed, Paid: true, Version: 2}},
		{name: "fail", report: func(ctx context.Context, svc *app.Service, id string) error {
			return svc.FailPayment(ctx, app.FailPayment{OrderID: id, Version: 1, Reason: contract.ReasonInsufficientFunds})
		}, wantOrder: domain.Order{Status: domain.StatusCancelled, CancelReason: "payment_failed: insufficient_funds", Version: 2}},
		{name: "refund after cancelling a confirmed order", before: []func(context.Context, *app.Service, string) error{confirm(1), cancel},
			report: func(ctx context.Context, svc *app.Service, id string) error {
				return svc.RecordRefund(ctx, app.RecordRefund{OrderID: id, Version: 3})
			}, wantOrder: domain.Order{Status: domain.StatusCancelled, CancelReason: domain.ReasonCancelledByCustomer,
				Paid: true, Refunded: true, Version: 4}},
		{name: "refund failure", before: []func(context.Context, *app.Service, string) error{confirm(1), cancel},
			report: func(ctx context.Context, svc *app.Service, id string) error {
				return svc.RecordRefundFailure(ctx, app.RecordRefundFailure{OrderID: id, Version: 3, AmountCents: 1250,
					Currency: "EUR", Reason: contract.ReasonAccountNotFound})
			}, wantOrder: domain.Order{Status: domain.StatusCancelled, CancelReason: domain.ReasonCancelledByCustomer,
				Paid: true, RefundFailure: contract.ReasonAccountNotFound, Version: 4}},
		{name: "stale confirmation after a cancellation is ignored", before: []func(context.Context, *app.Service, string) error{cancel},
			report: confirm(1), wantOrder: domain.Order{Status: domain.StatusCancelled, CancelReason: domain.ReasonCancelledByCustomer, Version: 2}},
		{name: "duplicate confirmation is ignored", before: []func(context.Context, *app.Service, string) error{confirm(1)},
			report: confirm(1), wantOrder: domain.Order{Status: domain.StatusConfirmed, Paid: true, Version: 2}},
		{name: "version the order never had", report: confirm(5), wantCode: apperr.CodeConflict, wantWhy: app.ReasonInconsistentEvent,
			wantOrder: domain.Order{Status: domain.StatusPending, Version: 1}},
		{name: "refund of a pending order", report: func(ctx context.Context, svc *app.Service, id string) error {
			return svc.RecordRefund(ctx, app.RecordRefund{OrderID: id, Version: 1})
		}, wantCode: apperr.CodeConflict, wantWhy: app.ReasonInconsistentEvent, wantOrder: domain.Order{Status: domain.StatusPending, Version: 1}},
		{name: "payment of another amount never confirms", report: func(ctx context.Context, svc *app.Service, id string) error {
			return svc.ConfirmPayment(ctx, app.ConfirmPayment{OrderID: id, Version: 1, AmountCents: 1251, Currency: "EUR"})
		}, wantCode: apperr.CodeInvalid, wantWhy: app.ReasonPaymentMismatch, wantOrder: domain.Order{Status: domain.StatusPending, Version: 1}},
		{name: "payment in another currency never confirms", report: func(ctx context.Context, svc *app.Service, id string) error {
			return svc.ConfirmPayment(ctx, app.ConfirmPayment{OrderID: id, Version: 1, AmountCents: 1250, Currency: "USD"})
		}, wantCode: apperr.CodeInvalid, wantWhy: app.ReasonPaymentMismatch, wantOrder: domain.Order{Status: domain.StatusPending, Version: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc, orders, _ := newService(t)
			ctx := context.Background()
			o := placeOrder(t, svc)
			for _, step := range tt.before {
				if err := step(ctx, svc, o.ID); err != nil {
					t.Fatal(err)
				}
			}
			err := tt.report(ctx, svc, o.ID)
			if tt.wantCode == "" && err != nil {
				t.Fatalf("report: %v", err)
			}
			if tt.wantCode != "" {
				wantAppError(t, err, tt.wantCode, tt.wantWhy)
			}
			g, w := orders.orders[o.ID], tt.wantOrder
			if g.Status != w.Status || g.CancelReason != w.CancelReason || g.Paid != w.Paid || g.Refunded != w.Refunded ||
				g.RefundFailure != w.RefundFailure || g.Version != w.Version {
				t.Fatalf("order %+v, want %+v", *g, w)
			}
		})
	}
	t.Run("unknown order", func(t *testing.T) {
		t.Parallel()
		svc, _, _ := newService(t)
		wantAppError(t, confirm(1)(context.Background(), svc, "nope"), apperr.CodeNotFound, app.ReasonUnknownOrder)
	})
}

// TestCancelOrder: cancelling a PENDING order emits OrderCancelled (not paid)
// at v2; cancelling it again changes nothing and emits nothing; cancelling a
// CONFIRMED order emits OrderCancelled with paid = true (the refund's trigger).
func TestCancelOrder(t *testing.T) {
	t.Parallel()
	svc, orders, _ := newService(t)
	ctx := context.Background()
	pending, confirmed := placeOrder(t, svc), placeOrder(t, svc)
	if err := svc.ConfirmPayment(ctx, app.ConfirmPayment{OrderID: confirmed.ID, Version: 1, AmountCents: 1250, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	orders.outbox = nil
	for range 2 {
		res, err := svc.CancelOrder(ctx, pending.ID, "req-2", nil)
		if err != nil || res.Order.Status != domain.StatusCancelled || res.Order.Version != 2 {
			t.Fatalf("CancelOrder = %+v, %v; want CANCELLED at v2", res.Order, err)
		}
	}
	if _, err := svc.CancelOrder(ctx, confirmed.ID, "req-3", nil); err != nil {
		t.Fatal(err)
	}
	want := []events.Event{
		{OrderID: pending.ID, OrderVersion: 2, CorrelationID: "req-2", Payload: events.OrderCancelled{Reason: domain.ReasonCancelledByCustomer}},
		{OrderID: confirmed.ID, OrderVersion: 3, CorrelationID: "req-3", Payload: events.OrderCancelled{Reason: domain.ReasonCancelledByCustomer, Paid: true}},
	}
	if len(orders.outbox) != len(want) {
		t.Fatalf("outbox holds %d events, want %d: %+v", len(orders.outbox), len(want), orders.outbox)
	}
	for i, w := range want {
		g := orders.outbox[i]
		if g.OrderID != w.OrderID || g.OrderVersion != w.OrderVersion || g.CorrelationID != w.CorrelationID || g.Payload != w.Payload {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
	}
}

// TestCancelStalePending: only the orders PENDING since before now - timeout
// are cancelled, with reason payment_timeout and an OrderCancelled event.
func TestCancelStalePending(t *testing.T) {
	t.Parallel()
	svc, orders, _ := newService(t)
	old := placeOrder(t, svc)
	svc.Now = func() time.Time { return t0.Add(time.Minute) }
	fresh := placeOrder(t, svc)
	paid := placeOrder(t, svc)
	ctx := context.Background()
	if err := svc.ConfirmPayment(ctx, app.ConfirmPayment{OrderID: paid.ID, Version: 1, AmountCents: 1250, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	svc.Now = func() time.Time { return t0.Add(90 * time.Second) }
	orders.outbox = nil
	n, err := svc.CancelStalePending(ctx, time.Minute, 10)
	if err != nil || n != 1 {
		t.Fatalf("CancelStalePending = %d, %v; want 1 order cancelled", n, err)
	}
	if o := orders.orders[old.ID]; o.Status != domain.StatusCancelled || o.CancelReason != domain.ReasonPaymentTimeout {
		t.Fatalf("stale order %s (%s), want CANCELLED with payment_timeout", o.Status, o.CancelReason)
	}
	if orders.orders[fresh.ID].Status != domain.StatusPending || orders.orders[paid.ID].Status != domain.StatusConfirmed {
		t.Fatal("a fresh or paid order was touched")
	}
	if len(orders.outbox) != 1 || orders.outbox[0].Type() != events.TypeOrderCancelled || orders.outbox[0].OrderID != old.ID {
		t.Fatalf("outbox %+v, want one OrderCancelled for the stale order", orders.outbox)
	}
}

// TestDeleteExpiredKeys: batches run until one is not full or maxBatches ran.
func TestDeleteExpiredKeys(t *testing.T) {
	t.Parallel()
	tests := []struct{ expired, batch, maxBatches, want int }{
		{25, 10, 10, 25}, // 10, 10, 5: stops at the partial batch
		{25, 10, 2, 20},  // the bound: the rest waits for the next run
		{0, 10, 10, 0},
	}
	for _, tt := range tests {
		svc, orders, _ := newService(t)
		orders.expired = tt.expired
		if n, err := svc.DeleteExpiredKeys(context.Background(), tt.batch, tt.maxBatches); err != nil || n != tt.want {
			t.Errorf("%+v: deleted %d (%v), want %d", tt, n, err, tt.want)
		}
	}
}

// TestRecordTimeline: the projection's entries go through the use case, which
// skips entries without an order, names a missing type, and never stores error
// text where a reason code belongs.
func TestRecordTimeline(t *testing.T) {
	t.Parallel()
	svc, _, tl := newService(t)
	ctx := context.Background()
	entries := []app.TimelineEntry{
		{OrderID: "", EventID: "skipped"},
		{OrderID: "o-1", EventID: "e1", EventType: "payment.completed"},
		{OrderID: "o-1", EventID: "e2"},
		{OrderID: "o-1", EventID: "e3", Poisoned: &app.Poisoned{ReasonCode: "Error 1146: Table 'x' doesn't exist", FromTopic: "payments"}},
		{OrderID: "o-1", EventID: "e4", Poisoned: &app.Poisoned{ReasonCode: app.ReasonUnknownOrder, FromTopic: "payments"}},
	}
	for _, e := range entries {
		if err := svc.RecordTimeline(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if len(tl.entries) != 4 {
		t.Fatalf("recorded %d entries, want 4 (the one without an order skipped)", len(tl.entries))
	}
	if tl.entries[0].EventType != "payment.completed" || tl.entries[1].EventType != app.UnknownEventType {
		t.Errorf("types %q, %q; want payment.completed, %q", tl.entries[0].EventType, tl.entries[1].EventType, app.UnknownEventType)
	}
	if p := tl.entries[2].Poisoned; p.ReasonCode != apperr.ReasonUnclassified || p.FromTopic != "payments" {
		t.Errorf("error text recorded as %+v, want reason code %q", *p, apperr.ReasonUnclassified)
	}
	if p := tl.entries[3].Poisoned; p.ReasonCode != app.ReasonUnknownOrder {
		t.Errorf("reason code recorded as %q, want %q", p.ReasonCode, app.ReasonUnknownOrder)
	}
}

// TestOrderTimeline: entries come in Kafka-time order, an event's retries are
// read from the attempts its effect reports, and an entry stored with raw error
// text (as before reason codes existed) is shown as "unclassified".
func TestOrderTimeline(t *testing.T) {
	t.Parallel()
	svc, _, tl := newService(t)
	o := placeOrder(t, svc)
	sqlText := "Error 1146 (42S02): Table 'payments.ledger' doesn't exist"
	tl.entries = []app.TimelineEntry{
		{OrderID: o.ID, EventID: "paid", At: t0.Add(2 * time.Second), CausedBy: "placed", CausedByAttempts: 3},
		{OrderID: o.ID, EventID: "placed", At: t0},
		{OrderID: o.ID, EventID: "e1", At: t0.Add(3 * time.Second), Poisoned: &app.Poisoned{ReasonCode: sqlText, FromTopic: "orders"}},
		{OrderID: o.ID, EventID: "e2", At: t0.Add(4 * time.Second), Poisoned: &app.Poisoned{ReasonCode: "unknown_order", FromTopic: "payments"}},
		{OrderID: "other", EventID: "x", At: t0},
	}
	entries, err := svc.OrderTimeline(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.EventID)
	}
	if strings.Join(ids, ",") != "placed,paid,e1,e2" {
		t.Fatalf("entries %v, want placed, paid, e1, e2", ids)
	}
	if entries[0].Retries != 2 || entries[1].Retries != 0 {
		t.Errorf("retries %d, %d; want 2 (3 attempts) and 0", entries[0].Retries, entries[1].Retries)
	}
	if got := entries[2].Poisoned.ReasonCode; got != apperr.ReasonUnclassified || strings.Contains(got, "Table") {
		t.Errorf("raw text shown as %q, want %q", got, apperr.ReasonUnclassified)
	}
	if got := entries[3].Poisoned.ReasonCode; got != "unknown_order" {
		t.Errorf("code shown as %q, want unknown_order", got)
	}
}

// TestStorageErrorsPassThrough: an error of the repository reaches the caller
// unchanged (the repository already classified it), so the edges see its code.
func TestStorageErrorsPassThrough(t *testing.T) {
	t.Parallel()
	down := &apperr.Error{Code: apperr.CodeUnavailable, Message: "down"}
	svc := app.New(failingOrders{down}, nil, slog.New(slog.DiscardHandler))
	err := svc.ConfirmPayment(context.Background(), app.ConfirmPayment{OrderID: "o-1", Version: 1, AmountCents: 1, Currency: "EUR"})
	if !errors.Is(err, down) {
		t.Fatalf("ConfirmPayment on a down database = %v, want %v", err, down)
	}
}

// failingOrders is an app.Orders whose writes fail with err.
type failingOrders struct{ err error }

func (f failingOrders) Add(context.Context, *domain.Order, ...events.Event) error { return f.err }
func (f failingOrders) Update(context.Context, string, func(*domain.Order) ([]events.Event, error)) error {
	return f.err
}
func (f failingOrders) Get(context.Context, string) (*domain.Order, error) { return nil, f.err }
func (f failingOrders) ListByCustomer(context.Context, string, int) ([]*domain.Order, error) {
	return nil, f.err
}
func (f failingOrders) PendingBefore(context.Context, time.Time, int) ([]string, error) {
	return nil, f.err
}
func (f failingOrders) AddOnce(context.Context, app.KeyClaim, *domain.Order, ...events.Event) (*app.StoredKey, error) {
	return nil, f.err
}
func (f failingOrders) UpdateOnce(context.Context, app.KeyClaim, string, func(*domain.Order) ([]events.Event, error)) (*app.StoredKey, error) {
	return nil, f.err
}
func (f failingOrders) DeleteExpiredKeys(context.Context, time.Time, int) (int, error) {
	return 0, f.err
}
