package messaging

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// DisableInboxForTest makes cs run without the inbox, for this package's
// negative controls. It exists only in test binaries.
func DisableInboxForTest(cs *Consumers) {
	cs.inboxMiddleware = func(h message.HandlerFunc) message.HandlerFunc { return h }
}

// DisableParkingForTest turns parking off on o (ADR 22), for the negative
// control that shows an unpublishable row blocking the outbox.
func DisableParkingForTest(o *Outbox) { o.noParking = true }

// HeldForTest is how many messages of consumer name wait at its gate
// (FailureStop, FailurePause).
func HeldForTest(cs *Consumers, name string) int { return int(cs.gates.of(name).held.Load()) }

// SetPauseProbeForTest replaces the database ping that paused consumers probe.
func SetPauseProbeForTest(cs *Consumers, probe func(context.Context) error) { cs.gates.probe = probe }

// WakesForTest is how many idle waits o's forwarders began, and how many of
// them a commit's wake ended.
func WakesForTest(o *Outbox) (waits, woken int64) { return o.wakers.counts() }

// WakeProbeForTest registers with o a forwarder's wake that no forwarder
// consumes, and returns how many wakes it holds (0 or 1, never more).
func WakeProbeForTest(o *Outbox) (pending func() int) {
	b := newWakeBackoff(time.Hour, time.Second)
	o.wakers.add(b)
	return func() int { return len(b.wake) }
}
