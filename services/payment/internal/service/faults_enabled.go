//go:build faults

package service

import (
	"context"
	"log/slog"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/services/payment/internal/app"
	"github.com/onceflow/onceflow/services/payment/internal/domain"
)

// withFaults applies the payment service's own fault-injection switch to the
// repository port (the messaging switches are installed by messaging.Start).
func withFaults(cfg Config, payments app.Payments, logger *slog.Logger) app.Payments {
	if !cfg.DisableVersionCheck {
		return payments
	}
	logger.Warn("FAULT INJECTION: the order-version check is off; every event looks new")
	return forgetfulPayments{payments}
}

// forgetfulPayments switches the order-version check off from outside the
// application: before each use case sees a payment, it forgets which order
// version the payment acted on, so IsNewer is true for every event and a
// redelivered OrderPlaced charges again unless the inbox stops it.
type forgetfulPayments struct{ app.Payments }

// Update implements app.Payments.
func (r forgetfulPayments) Update(ctx context.Context, orderID, customerID string,
	fn func(p *domain.Payment, a *domain.Account) ([]events.Event, error)) error {
	return r.Payments.Update(ctx, orderID, customerID, func(p *domain.Payment, a *domain.Account) ([]events.Event, error) {
		p.OrderVersion = 0
		return fn(p, a)
	})
}
