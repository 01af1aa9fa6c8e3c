package http

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/pkg/diagnose"
)

// DiagnosisReport is what the payment service knows of an order, for the
// order service's diagnosis.
type DiagnosisReport struct {
	OrderID string `json:"order_id"`
	// PaymentStatus is the order's payment's status ("" if it has none).
	PaymentStatus string `json:"payment_status"`
	// ConsumerGroup is the service's consumer group.
	ConsumerGroup string `json:"consumer_group"`
	// Holds are what holds the order's messages here (diagnose.Prober.Holds).
	Holds []diagnose.Hold `json:"holds"`
}

// Diagnosis returns the handler of GET /admin/diagnosis/orders/:id; the
// service mounts it behind the admin token (poisonhttp.AdminOnly).
func Diagnosis(report func(ctx context.Context, orderID string) (DiagnosisReport, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		r, err := report(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		if r.Holds == nil {
			r.Holds = []diagnose.Hold{}
		}
		return c.JSON(http.StatusOK, r)
	}
}
