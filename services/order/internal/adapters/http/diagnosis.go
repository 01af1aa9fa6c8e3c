package http

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/services/order/internal/app"
)

// diagnosisResponse is a diagnosis as the API shows it (the Diagnosis schema).
type diagnosisResponse struct {
	OrderID       string        `json:"order_id"`
	Status        string        `json:"status"`
	Stage         string        `json:"stage"`
	Version       int           `json:"version"`
	PaymentStatus string        `json:"payment_status,omitempty"`
	Cause         *holdResponse `json:"cause,omitempty"`
}

// holdResponse is a hold (the DiagnosisHold schema of package diagnose).
type holdResponse struct {
	Code    string    `json:"code"`
	Service string    `json:"service"`
	Detail  string    `json:"detail"`
	Remedy  string    `json:"remedy"`
	Since   time.Time `json:"since,omitzero"`
}

// Diagnosis returns the handler of GET /orders/:id/diagnosis. The service
// mounts it behind the admin token (poisonhttp.AdminOnly), beside the admin
// endpoints.
func Diagnosis(svc *app.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		d, err := svc.Diagnose(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		r := diagnosisResponse{OrderID: d.Order.ID, Status: string(d.Order.Status), Stage: d.Stage,
			Version: d.Order.Version, PaymentStatus: d.PaymentStatus}
		if h := d.Cause; h != nil {
			r.Cause = &holdResponse{Code: h.Code, Service: h.Service, Detail: h.Detail, Remedy: h.Remedy, Since: h.Since}
		}
		return c.JSON(http.StatusOK, r)
	}
}
