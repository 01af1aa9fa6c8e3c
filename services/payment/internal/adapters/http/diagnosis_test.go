package http_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/diagnose"
	"github.com/onceflow/onceflow/pkg/poison/poisonhttp"
	paymenthttp "github.com/onceflow/onceflow/services/payment/internal/adapters/http"
)

// TestDiagnosisJSON: the payment side of a diagnosis answers as the document
// says (an empty list of holds is [], not null), behind the admin token.
func TestDiagnosisJSON(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	reports := map[string]paymenthttp.DiagnosisReport{
		"o-1": {OrderID: "o-1", ConsumerGroup: "payment-service", Holds: []diagnose.Hold{{Code: diagnose.CodeKeyParked, Service: "payment", Detail: "d", Remedy: "r", Since: since}}},
		"o-2": {OrderID: "o-2", PaymentStatus: "CHARGED", ConsumerGroup: "payment-service"},
	}
	api := paymenthttp.NewServer(func(context.Context) error { return nil }, nil, slog.New(slog.DiscardHandler))
	api.GET("/admin/diagnosis/orders/:id", paymenthttp.Diagnosis(func(_ context.Context, id string) (paymenthttp.DiagnosisReport, error) {
		return reports[id], nil
	}), poisonhttp.AdminOnly("secret")...)
	for id, want := range map[string]string{
		"o-1": `{"order_id":"o-1","payment_status":"","consumer_group":"payment-service","holds":[{"code":"key_parked","service":"payment","detail":"d","remedy":"r","since":"2026-11-23T09:00:00Z"}]}` + "\n",
		"o-2": `{"order_id":"o-2","payment_status":"CHARGED","consumer_group":"payment-service","holds":[]}` + "\n",
	} {
		req := httptest.NewRequest(http.MethodGet, "/admin/diagnosis/orders/"+id, nil)
		req.Header.Set("Authorization", "Bearer secret")
		if rec := document(t).Serve(t, api, req); rec.Code != http.StatusOK || rec.Body.String() != want {
			t.Errorf("GET %s = %d %s, want %s", req.URL.Path, rec.Code, rec.Body, want)
		}
	}
}
