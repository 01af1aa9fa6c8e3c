package messaging

import (
	"os"
	"sync/atomic"
	"syscall"

	"github.com/ThreeDotsLabs/watermill/message"
)

// FaultConfig holds test-only fault hooks for the fault-injection suite. Each
// kills the process with SIGKILL at a moment where a crash is most likely to
// cause duplicates, to prove that none of them has a double effect. Zero turns a
// hook off; never set them outside tests.
type FaultConfig struct {
	// CrashAfterPublish kills the process each time its forwarder has published
	// this many events since start: right after Kafka acknowledged the last one and
	// before its outbox row is deleted, so the batch is published again after the
	// restart.
	CrashAfterPublish int `env:"CRASH_AFTER_PUBLISH"`
	// CrashAfterCommit kills the process each time its consumer has processed this
	// many messages since start: right after the inbox transaction committed and
	// before the message is acknowledged to Kafka, so it is delivered again.
	CrashAfterCommit int `env:"CRASH_AFTER_COMMIT"`
}

// crashEvery returns a function that kills the process on its n-th call.
func crashEvery(n int) func() {
	var calls atomic.Int64
	return func() {
		if calls.Add(1) == int64(n) {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never return: the signal is on its way
		}
	}
}

// apply installs the configured hooks on the node.
func (c FaultConfig) apply(n *Node) {
	if c.CrashAfterPublish > 0 {
		crash := crashEvery(c.CrashAfterPublish)
		n.forwarderMiddlewares = append(n.forwarderMiddlewares, func(h message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				out, err := h(msg)
				if err == nil {
					crash()
				}
				return out, err
			}
		})
		n.slog.Warn("FAULT HOOK: crashing after every published event number", "n", c.CrashAfterPublish)
	}
	if c.CrashAfterCommit > 0 {
		crash := crashEvery(c.CrashAfterCommit)
		n.inbox.AfterCommit = func(*message.Message) { crash() }
		n.slog.Warn("FAULT HOOK: crashing after every committed message number", "n", c.CrashAfterCommit)
	}
}
