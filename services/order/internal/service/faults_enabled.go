//go:build faults

package service

import "github.com/onceflow/onceflow/pkg/messaging"

// Faults are the order service's fault-injection switches, compiled only with
// `-tags faults` (ADR 21); main reads them from ORDER_FAULT_* variables.
type Faults struct {
	// NoEdgeLimits (ORDER_FAULT_NO_EDGE_LIMITS) makes the HTTP API keep any client
	// X-Request-ID, however long, so that the fault scenario oversized-input can
	// get over-size events into the outbox (ADR 22). The outbox's own size bounds
	// (messaging.MaxMetadataValueBytes) still apply.
	NoEdgeLimits bool `env:"ORDER_FAULT_NO_EDGE_LIMITS"`
	// Messaging: ORDER_FAULT_CRASH_AFTER_PUBLISH, ..._REFUSE_MID_BATCH, ...
	Messaging messaging.FaultConfig `envPrefix:"ORDER_FAULT_"`
}

// WithFaults returns the Option that applies f.
func WithFaults(f Faults) Option {
	return func(w *wiring) {
		w.unboundedRequestID = f.NoEdgeLimits
		w.messaging = append(w.messaging, messaging.WithFaults(f.Messaging))
	}
}
