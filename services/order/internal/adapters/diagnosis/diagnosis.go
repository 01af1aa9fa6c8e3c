// Package diagnosis is the order service's adapter for the diagnosis of an
// order: what holds the order's messages in this service (package diagnose
// on its own database and consumers) and, over HTTP, in the payment service
// (its GET /admin/diagnosis/orders/{id}), and where a consumer group stands
// in Kafka.
package diagnosis

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/onceflow/onceflow/pkg/diagnose"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// Holds implements app.Holds with a diagnose.Prober.
type Holds struct{ Prober diagnose.Prober }

var _ app.Holds = Holds{}

// Holds implements app.Holds.
func (h Holds) Holds(ctx context.Context, orderID string) ([]app.Hold, error) {
	found, err := h.Prober.Holds(ctx, orderID)
	return toApp(found), err
}

func toApp(found []diagnose.Hold) []app.Hold {
	out := make([]app.Hold, len(found))
	for i, f := range found {
		out[i] = app.Hold{Code: f.Code, Service: f.Service, Detail: f.Detail, Remedy: f.Remedy, Since: f.Since}
	}
	return out
}

// PaymentReport is the payment service's answer to GET
// /admin/diagnosis/orders/{id} (its OpenAPI document's PaymentDiagnosis).
type PaymentReport struct {
	OrderID       string          `json:"order_id"`
	PaymentStatus string          `json:"payment_status"`
	ConsumerGroup string          `json:"consumer_group"`
	Holds         []diagnose.Hold `json:"holds"`
}

// Payment implements app.PaymentProbe over HTTP.
type Payment struct {
	// BaseURL is the payment service's base URL; Token its admin token.
	BaseURL, Token string
	// Client is the HTTP client (nil: one with a 2 s timeout).
	Client *http.Client
}

var _ app.PaymentProbe = Payment{}

var defaultClient = &http.Client{Timeout: 2 * time.Second}

// Report implements app.PaymentProbe: any answer but a 200 with a valid body
// is an error that says what came back.
func (p Payment) Report(ctx context.Context, orderID string) (app.PaymentReport, error) {
	if p.BaseURL == "" {
		return app.PaymentReport{}, fmt.Errorf("no payment service URL is configured (ORDER_CONSOLE_PAYMENT_URL)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.BaseURL+"/admin/diagnosis/orders/"+url.PathEscape(orderID), nil)
	if err != nil {
		return app.PaymentReport{}, err
	}
	req.Header.Set("Authorization", "Bearer "+p.Token)
	client := p.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return app.PaymentReport{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return app.PaymentReport{}, fmt.Errorf("it answered %s", resp.Status)
	}
	var r PaymentReport
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&r); err != nil {
		return app.PaymentReport{}, fmt.Errorf("its answer is not a diagnosis: %w", err)
	}
	return app.PaymentReport{PaymentStatus: r.PaymentStatus, ConsumerGroup: r.ConsumerGroup, Holds: toApp(r.Holds)}, nil
}

// Groups implements app.Groups with Kafka's answers.
type Groups struct{ Lag *kafka.LagReader }

var _ app.Groups = Groups{}

// Position implements app.Groups.
func (g Groups) Position(_ context.Context, group, topic string, partition int32) (app.GroupPosition, error) {
	p, err := g.Lag.Position(group, topic, partition)
	return app.GroupPosition{Committed: p.Committed, Members: p.Members}, err
}
