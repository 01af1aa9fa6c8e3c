//go:build faults

package messaging

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/crash"
	"github.com/onceflow/onceflow/pkg/causation"
)

// FaultConfig holds the consumers' fault-injection switches: a crash at the
// moment a crash is most likely to cause duplicates, and a switch that turns
// the inbox off so that a negative control can show the damage.
//
// This file is compiled only with `-tags faults` (e2e/harness builds the
// services that way; `make build`, `make run`, `make bench` and the Dockerfile
// do not), so a production binary has none of them (ADR 21). A service reads
// them from <SERVICE>_FAULT_* variables, e.g. PAYMENT_FAULT_DISABLE_INBOX.
// Zero values are off.
type FaultConfig struct {
	// CrashAfterCommit kills the process each time its consumer has processed this
	// many messages since start: right after the inbox transaction committed and
	// before the message is acknowledged to Kafka, so it is delivered again.
	CrashAfterCommit int `env:"CRASH_AFTER_COMMIT"`
	// DisableInbox runs the consumer without the inbox: every delivery of a
	// message has its effect again. Negative control, and end-to-end tests that
	// isolate the aggregate-version check, only.
	DisableInbox bool `env:"DISABLE_INBOX"`
}

// WithFaults returns the Option that puts c's hooks and switches on the
// consumers (none if c is zero). It logs a warning naming every switch that
// is on.
func WithFaults(c FaultConfig) Option {
	return func(cs *Consumers) { c.install(cs) }
}

// install puts the configured fault hooks and switches on cs.
func (c FaultConfig) install(cs *Consumers) {
	if c == (FaultConfig{}) {
		return
	}
	cs.logger.Warn("FAULT INJECTION: this process's consumers run with test-only fault switches", "faults", c)
	if c.DisableInbox {
		cs.inboxMiddleware = passThroughInbox
	}
	if c.CrashAfterCommit > 0 {
		kill := crash.Every(c.CrashAfterCommit)
		inbox := cs.inboxMiddleware
		cs.inboxMiddleware = func(h message.HandlerFunc) message.HandlerFunc {
			handle := inbox(h)
			return func(msg *message.Message) ([]*message.Message, error) {
				out, err := handle(msg)
				if err == nil { // committed, not yet acknowledged to Kafka
					kill()
				}
				return out, err
			}
		}
	}
}

// passThroughInbox stands in for Inbox.Middleware when the inbox is switched
// off: the handler runs for every delivery (in its own transactions), and events
// it writes still carry their cause.
func passThroughInbox(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		msg.SetContext(causation.WithCause(msg.Context(), msg.UUID, causation.Attempt(msg.Context())))
		return h(msg)
	}
}
