package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// TestRefundFailureAlert: recording a refund failure writes one ERROR line with
// alert=refund_failed, the order id, the correlation id and the reason, what
// an alert rule matches; the same report again (a redelivery) is stale,
// changes nothing and raises no second alert; a report that cannot apply
// raises none.
func TestRefundFailureAlert(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	orders := &memOrders{orders: map[string]*domain.Order{}}
	svc := app.New(orders, &memTimeline{}, slog.New(slog.NewJSONHandler(&logs, nil)))
	svc.Now = func() time.Time { return t0 }
	ctx := context.Background()
	o := placeOrder(t, svc)
	report := app.RecordRefundFailure{OrderID: o.ID, Version: 3, AmountCents: 1250, Currency: "EUR",
		Reason: contract.ReasonAccountNotFound, CorrelationID: "req-42"}
	if err := svc.RecordRefundFailure(ctx, report); err == nil {
		t.Fatal("a refund failure for a pending order was accepted")
	}
	if n := len(alerts(t, &logs)); n != 0 {
		t.Fatalf("%d alerts for a report that did not apply, want 0", n)
	}
	if err := svc.ConfirmPayment(ctx, app.ConfirmPayment{OrderID: o.ID, Version: 1, AmountCents: 1250, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CancelOrder(ctx, o.ID, "", nil); err != nil {
		t.Fatal(err)
	}
	for range 2 { // delivered twice
		if err := svc.RecordRefundFailure(ctx, report); err != nil {
			t.Fatal(err)
		}
	}
	got := alerts(t, &logs)
	if len(got) != 1 {
		t.Fatalf("%d alerts, want 1: %v", len(got), got)
	}
	want := map[string]any{"level": "ERROR", "alert": app.AlertRefundFailed, "order_id": o.ID,
		"correlation_id": "req-42", "reason": contract.ReasonAccountNotFound}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("alert attribute %s = %v, want %v", k, got[0][k], v)
		}
	}
}

// alerts returns the log lines that carry an alert attribute.
func alerts(t *testing.T, logs *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if l == "" {
			continue
		}
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if _, ok := line["alert"]; ok {
			out = append(out, line)
		}
	}
	return out
}
