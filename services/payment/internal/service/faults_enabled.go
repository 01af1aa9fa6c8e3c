//go:build faults

package service

import (
	"context"
	"time"

	"github.com/onceflow/onceflow/deploy/dbusers"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/services/payment/internal/app"
	"github.com/onceflow/onceflow/services/payment/internal/domain"
)

// Faults are the payment service's fault-injection switches, compiled only with
// `-tags faults`; main reads them from PAYMENT_FAULT_* variables.
type Faults struct {
	// Outbox: PAYMENT_FAULT_CRASH_AFTER_PUBLISH, ..._REFUSE_MID_BATCH, ...
	Outbox outbox.Faults `envPrefix:"PAYMENT_FAULT_"`
	// Consumers: PAYMENT_FAULT_CRASH_AFTER_COMMIT, ..._DISABLE_INBOX,
	// ..._STOCK_ROUTER.
	Consumers consumer.Faults `envPrefix:"PAYMENT_FAULT_"`
	// DisableVersionCheck: the payment forgets which order version it acted on
	// and, for a placement, that it was placed, so every event looks new and
	// only the inbox stands between a redelivered OrderPlaced and a second
	// charge. End-to-end tests of the inbox and the negative controls use it.
	DisableVersionCheck bool `env:"PAYMENT_FAULT_DISABLE_VERSION_CHECK"`
	// Customers: placements of some customers fail permanently or for a while
	// (the strategy comparison).
	Customers CustomerFaults
}

// WithFaults returns the Option that applies f.
func WithFaults(f Faults) Option {
	return func(w *wiring) {
		w.outbox = append(w.outbox, outbox.WithFaults(f.Outbox, w.logger))
		if f.Outbox.StockRelay {
			w.migrations = append(w.migrations, outbox.StockMigrations)
			w.appSQL += outbox.StockAppSQL(dbusers.Payment.Schema)
		}
		w.consumer = append(w.consumer, consumer.WithFaults(f.Consumers, w.logger))
		if f.DisableVersionCheck {
			w.logger.Warn("FAULT INJECTION: the order-version check is off; every event looks new")
			w.payments = func(p app.Payments) app.Payments { return forgetfulPayments{p} }
		}
		if f.Customers.on() {
			w.logger.Warn("FAULT INJECTION: placements of some customers fail", "permanent_prefix", f.Customers.PermanentPrefix,
				"transient_prefix", f.Customers.TransientPrefix, "unavailable_prefix", f.Customers.UnavailablePrefix, "transient_for", f.Customers.TransientFor.String())
			inner := w.payments
			w.payments = func(p app.Payments) app.Payments {
				if inner != nil {
					p = inner(p)
				}
				return f.Customers.wrap(p, time.Now)
			}
		}
	}
}

// forgetfulPayments switches the payment's checks against acting twice off from
// outside the application: before each use case sees a payment, it forgets
// which order version the payment acted on (IsNewer is true for every event)
// and, for a placement (the only use case that names the customer), that the
// payment was placed (CheckPlacement lets it charge), so a redelivered
// OrderPlaced charges again unless the inbox stops it.
type forgetfulPayments struct{ app.Payments }

// Update implements app.Payments.
func (r forgetfulPayments) Update(ctx context.Context, orderID, customerID string,
	fn func(p *domain.Payment, f domain.Funds) ([]events.Event, error)) error {
	return r.Payments.Update(ctx, orderID, customerID, func(p *domain.Payment, f domain.Funds) ([]events.Event, error) {
		p.OrderVersion = 0
		if customerID != "" {
			p.Status = domain.StatusNone
		}
		return fn(p, f)
	})
}
