//go:build faults

package consumer

import (
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/crash"
	"github.com/onceflow/onceflow/pkg/causation"
)

// Faults are the consumers' fault-injection switches: a crash at the moment a
// crash is most likely to cause duplicates, and a switch that turns the inbox
// off so that a negative control can show the damage.
//
// This file is compiled only with `-tags faults` (e2e/harness builds the
// services that way; `make build`, `make run`, `make bench` and the Dockerfile
// do not), so a production binary has none of them. A service reads
// them from <SERVICE>_FAULT_* variables, e.g. PAYMENT_FAULT_DISABLE_INBOX.
// Zero values are off.
type Faults struct {
	// CrashAfterCommit kills the process each time its consumer has processed this
	// many messages since start: right after the inbox transaction committed and
	// before the message is acknowledged to Kafka, so it is delivered again.
	CrashAfterCommit int `env:"CRASH_AFTER_COMMIT"`
	// DisableInbox runs the consumer without the inbox: every delivery of a
	// message has its effect again. Negative control, and end-to-end tests that
	// isolate the aggregate-version check, only.
	DisableInbox bool `env:"DISABLE_INBOX"`
	// StockRouter replaces the consumers' router with one of stock Watermill
	// parts only (stockRouter): the benchmark's peer of the saga.
	StockRouter bool `env:"STOCK_ROUTER"`
}

// WithFaults returns the Option that puts f's hooks and switches on the
// consumers (none if f is zero). It logs to logger a warning naming every
// switch that is on.
func WithFaults(f Faults, logger *slog.Logger) Option {
	return func(o *options) {
		if f == (Faults{}) {
			return
		}
		logger.Warn("FAULT INJECTION: this process's consumers run with test-only fault switches", "faults", f)
		if f.StockRouter {
			o.router = stockRouter
		}
		if f.DisableInbox {
			o.wrapInbox = append(o.wrapInbox, func(message.HandlerMiddleware) message.HandlerMiddleware { return passThroughInbox })
		}
		if f.CrashAfterCommit > 0 {
			kill := crash.Every(f.CrashAfterCommit)
			o.wrapInbox = append(o.wrapInbox, func(inbox message.HandlerMiddleware) message.HandlerMiddleware {
				return func(h message.HandlerFunc) message.HandlerFunc {
					handle := inbox(h)
					return func(msg *message.Message) ([]*message.Message, error) {
						out, err := handle(msg)
						if err == nil { // committed, not yet acknowledged to Kafka
							kill()
						}
						return out, err
					}
				}
			})
		}
	}
}

// passThroughInbox stands in for the inbox when it is switched off: the
// handler runs for every delivery (in its own transactions), and events it
// writes still carry their cause.
func passThroughInbox(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		msg.SetContext(causation.WithCause(msg.Context(), msg.UUID, causation.Attempt(msg.Context())))
		return h(msg)
	}
}
