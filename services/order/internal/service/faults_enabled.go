//go:build faults

package service

import "github.com/onceflow/onceflow/pkg/messaging"

// Faults are the order service's fault-injection switches, compiled only with
// `-tags faults` (ADR 21); main reads them from ORDER_FAULT_* variables.
type Faults struct {
	// Messaging: ORDER_FAULT_CRASH_AFTER_PUBLISH, ..._REFUSE_MID_BATCH,
	// ..._OVERSIZE_CORRELATION_PREFIX, ...
	Messaging messaging.FaultConfig `envPrefix:"ORDER_FAULT_"`
}

// WithFaults returns the Option that applies f.
func WithFaults(f Faults) Option {
	return func(w *wiring) {
		w.messaging = append(w.messaging, messaging.WithFaults(f.Messaging))
	}
}
