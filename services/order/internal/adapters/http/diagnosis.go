package http

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
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
		return c.JSON(http.StatusOK, toDiagnosisResponse(d))
	}
}

func toDiagnosisResponse(d *app.Diagnosis) diagnosisResponse {
	r := diagnosisResponse{OrderID: d.Order.ID, Status: string(d.Order.Status), Stage: d.Stage,
		Version: d.Order.Version, PaymentStatus: d.PaymentStatus}
	if h := d.Cause; h != nil {
		r.Cause = &holdResponse{Code: h.Code, Service: h.Service, Detail: h.Detail, Remedy: h.Remedy, Since: h.Since}
	}
	return r
}

// stuckGroupResponse is the stuck orders one cause holds (the StuckGroup schema).
type stuckGroupResponse struct {
	Cause  string              `json:"cause"`
	Orders []diagnosisResponse `json:"orders"`
}

// Stuck returns the handler of GET /admin/orders/stuck?older_than_seconds=&limit=
// (defaults 600 and 50); the service mounts it behind the admin token.
func Stuck(svc *app.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		olderThan, limit := 600, 50
		for _, p := range []struct {
			name     string
			v        *int
			min, max int
		}{{"older_than_seconds", &olderThan, 0, math.MaxInt32}, {"limit", &limit, 1, app.MaxStuck}} {
			if !c.QueryParams().Has(p.name) {
				continue
			}
			n, err := strconv.Atoi(c.QueryParam(p.name))
			if err != nil || n < p.min || n > p.max {
				return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("%s must be an integer from %d to %d", p.name, p.min, p.max))
			}
			*p.v = n
		}
		groups, err := svc.StuckOrders(c.Request().Context(), time.Duration(olderThan)*time.Second, limit)
		if err != nil {
			return err
		}
		out := make([]stuckGroupResponse, len(groups))
		for i, g := range groups {
			out[i] = stuckGroupResponse{Cause: g.Cause, Orders: make([]diagnosisResponse, len(g.Orders))}
			for j, d := range g.Orders {
				out[i].Orders[j] = toDiagnosisResponse(d)
			}
		}
		return c.JSON(http.StatusOK, map[string]any{"older_than_seconds": olderThan, "groups": out})
	}
}
