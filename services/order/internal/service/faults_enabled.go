//go:build faults

package service

import (
	"github.com/onceflow/onceflow/deploy/dbusers"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/outbox"
)

// Faults are the order service's fault-injection switches, compiled only with
// `-tags faults`; main reads them from ORDER_FAULT_* variables.
type Faults struct {
	// Outbox: ORDER_FAULT_CRASH_AFTER_PUBLISH, ..._REFUSE_MID_BATCH,
	// ..._OVERSIZE_CORRELATION_PREFIX, ...
	Outbox outbox.Faults `envPrefix:"ORDER_FAULT_"`
	// Consumers: ORDER_FAULT_CRASH_AFTER_COMMIT, ..._DISABLE_INBOX,
	// ..._STOCK_ROUTER.
	Consumers consumer.Faults `envPrefix:"ORDER_FAULT_"`
}

// WithFaults returns the Option that applies f.
func WithFaults(f Faults) Option {
	return func(w *wiring) {
		w.outbox = append(w.outbox, outbox.WithFaults(f.Outbox, w.logger))
		if f.Outbox.StockRelay {
			w.migrations = append(w.migrations, outbox.StockMigrations)
			w.appSQL += outbox.StockAppSQL(dbusers.Order.Schema)
		}
		w.consumer = append(w.consumer, consumer.WithFaults(f.Consumers, w.logger))
	}
}
