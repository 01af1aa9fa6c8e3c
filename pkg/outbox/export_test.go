package outbox

import "time"

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
