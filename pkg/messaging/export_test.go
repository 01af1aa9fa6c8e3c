package messaging

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// DisableInboxForTest makes cs run without the inbox, for this package's
// negative controls. It exists only in test binaries.
func DisableInboxForTest(cs *Consumers) {
	cs.inboxMiddleware = func(h message.HandlerFunc) message.HandlerFunc { return h }
}

// HeldForTest is how many messages of consumer name wait at its gate
// (FailureStop, FailurePause).
func HeldForTest(cs *Consumers, name string) int { return int(cs.gates.of(name).held.Load()) }

// SetPauseProbeForTest replaces the database ping that paused consumers probe.
func SetPauseProbeForTest(cs *Consumers, probe func(context.Context) error) { cs.gates.probe = probe }
