package app_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// memOrders is an in-memory app.Orders whose Update works on a copy and keeps it
// only if fn succeeds, like the repository's transaction.
type memOrders struct{ orders map[string]*domain.Order }

func (m *memOrders) Add(_ context.Context, o *domain.Order, _ ...events.Event) error {
	m.orders[o.ID] = o
	return nil
}

func (m *memOrders) Update(_ context.Context, id string, fn func(*domain.Order) ([]events.Event, error)) error {
	o, ok := m.orders[id]
	if !ok {
		return domain.ErrNotFound
	}
	c := *o
	if _, err := fn(&c); err != nil {
		return err
	}
	m.orders[id] = &c
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

func (m *memOrders) PendingBefore(context.Context, time.Time, int) ([]string, error) { return nil, nil }

// AddOnce and UpdateOnce ignore the key: these tests are about the saga, the
// key's rules are tested against MariaDB (adapters/mariadb/keys_test.go).
func (m *memOrders) AddOnce(ctx context.Context, _ app.KeyClaim, o *domain.Order, evts ...events.Event) (*app.StoredKey, error) {
	return nil, m.Add(ctx, o, evts...)
}

func (m *memOrders) UpdateOnce(ctx context.Context, _ app.KeyClaim, id string, fn func(*domain.Order) ([]events.Event, error)) (*app.StoredKey, error) {
	return nil, m.Update(ctx, id, fn)
}

func (m *memOrders) DeleteExpiredKeys(context.Context, time.Time, int) (int, error) { return 0, nil }

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

func newService(t *testing.T) (*app.Service, *memOrders, *memTimeline) {
	t.Helper()
	orders, tl := &memOrders{orders: map[string]*domain.Order{}}, &memTimeline{}
	return app.New(orders, tl, slog.New(slog.NewTextHandler(io.Discard, nil))), orders, tl
}

func placeOrder(t *testing.T, svc *app.Service) *domain.Order {
	t.Helper()
	res, err := svc.PlaceOrder(context.Background(), app.PlaceOrder{CustomerID: "c-1", AmountCents: 1250, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	return res.Order
}

func paymentEvent(o *domain.Order, version int, p events.Payload) events.Event {
	return events.Event{ID: app.NewID(), OrderID: o.ID, OrderVersion: version, OccurredAt: time.Now(), Payload: p}
}

// TestPaymentMismatchNeverConfirms: a PaymentCompleted whose amount or currency
// is not the order's leaves the order PENDING and fails permanently with the
// public reason payment_mismatch (so the consumer poisons it at once).
func TestPaymentMismatchNeverConfirms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		amount   int64
		currency string
		wantErr  bool
	}{
		{"matching payment confirms", 1250, "EUR", false},
		{"smaller amount", 1, "EUR", true},
		{"larger amount", 1251, "EUR", true},
		{"other currency", 1250, "USD", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, orders, _ := newService(t)
			o := placeOrder(t, svc)
			err := svc.HandlePaymentEvent(context.Background(), paymentEvent(o, 1,
				events.PaymentCompleted{CustomerID: "c-1", AmountCents: tt.amount, Currency: tt.currency}))
			got := orders.orders[o.ID]
			if !tt.wantErr {
				if err != nil || got.Status != domain.StatusConfirmed {
					t.Fatalf("HandlePaymentEvent = %v, order %s; want nil and CONFIRMED", err, got.Status)
				}
				return
			}
			if got.Status != domain.StatusPending || got.Paid || got.Version != 1 {
				t.Fatalf("order after a mismatched payment: %s paid=%v v%d, want PENDING, unpaid, v1", got.Status, got.Paid, got.Version)
			}
			if !messaging.IsPermanent(err) || !errors.Is(err, domain.ErrPaymentMismatch) {
				t.Fatalf("error = %v, want a permanent ErrPaymentMismatch", err)
			}
			if code := messaging.ReasonCode(err); code != app.ReasonPaymentMismatch {
				t.Fatalf("reason code = %q, want %q", code, app.ReasonPaymentMismatch)
			}
		})
	}
}

// TestRefundFailureShowsOnTheOrder: PaymentRefundFailed for the cancellation's
// version marks the cancelled order paid, not refunded, with the reason; a
// duplicate is ignored.
func TestRefundFailureShowsOnTheOrder(t *testing.T) {
	t.Parallel()
	svc, orders, _ := newService(t)
	o := placeOrder(t, svc)
	ctx := context.Background()
	if err := svc.HandlePaymentEvent(ctx, paymentEvent(o, 1, events.PaymentCompleted{CustomerID: "c-1", AmountCents: 1250, Currency: "EUR"})); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CancelOrder(ctx, o.ID, "", nil); err != nil { // v3
		t.Fatal(err)
	}
	failed := paymentEvent(o, 3, events.PaymentRefundFailed{AmountCents: 1250, Currency: "EUR", Reason: events.ReasonAccountNotFound})
	for range 2 {
		if err := svc.HandlePaymentEvent(ctx, failed); err != nil {
			t.Fatal(err)
		}
	}
	got := orders.orders[o.ID]
	if got.Status != domain.StatusCancelled || !got.Paid || got.Refunded || got.RefundFailure != events.ReasonAccountNotFound || got.Version != 4 {
		t.Fatalf("order = %+v, want CANCELLED, paid, not refunded, refund_failure account_not_found, v4", got)
	}
}

// TestTimelineShowsOnlyReasonCodes: an entry stored with raw error text (as
// before reason codes existed) is shown as "unclassified", never with the text.
func TestTimelineShowsOnlyReasonCodes(t *testing.T) {
	t.Parallel()
	svc, _, tl := newService(t)
	o := placeOrder(t, svc)
	sqlText := "Error 1146 (42S02): Table 'payments.ledger' doesn't exist"
	tl.entries = []app.TimelineEntry{
		{OrderID: o.ID, EventID: "e1", Poisoned: &app.Poisoned{ReasonCode: sqlText, FromTopic: "orders"}},
		{OrderID: o.ID, EventID: "e2", Poisoned: &app.Poisoned{ReasonCode: "unknown_order", FromTopic: "payments"}},
	}
	entries, err := svc.OrderTimeline(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := entries[0].Poisoned.ReasonCode; got != messaging.ReasonUnclassified || strings.Contains(got, "Table") {
		t.Errorf("raw text shown as %q, want %q", got, messaging.ReasonUnclassified)
	}
	if got := entries[1].Poisoned.ReasonCode; got != "unknown_order" {
		t.Errorf("code shown as %q, want unknown_order", got)
	}
}
