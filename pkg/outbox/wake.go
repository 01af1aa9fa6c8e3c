package outbox

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// wakeBackoff is the outbox subscriber's BackoffManager (watermill-sql v4 calls
// HandleError after every poll and sleeps what it returns). After a poll that
// found nothing it waits, inside HandleError, until a transaction that wrote
// outbox rows committed in this process (wake), the fallback poll interval
// passed, or the forwarder is closing, and then lets the subscriber poll at
// once. Errors and polls that found rows go to watermill's default manager: a
// deadlock polls again at once, any other error waits the retry interval.
type wakeBackoff struct {
	poll time.Duration
	// errors is watermill-sql's default BackoffManager, for everything but an
	// empty poll.
	errors wsql.BackoffManager
	// wake holds at most one pending signal: a commit while the forwarder is
	// busy polling is not lost, and many commits make one poll.
	wake chan struct{}
	stop chan struct{}
	once sync.Once
	// waits counts the idle waits begun, woken those a wake ended (tests
	// assert them instead of speed).
	waits, woken atomic.Int64
}

func newWakeBackoff(poll, retry time.Duration) *wakeBackoff {
	return &wakeBackoff{poll: poll, errors: wsql.NewDefaultBackoffManager(poll, retry),
		wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// HandleError implements wsql.BackoffManager.
func (b *wakeBackoff) HandleError(logger watermill.LoggerAdapter, noMsg bool, err error) time.Duration {
	if err != nil || !noMsg {
		return b.errors.HandleError(logger, noMsg, err)
	}
	b.waits.Add(1)
	timer := time.NewTimer(b.poll)
	defer timer.Stop()
	select {
	case <-b.wake:
		b.woken.Add(1)
		return 0
	case <-timer.C:
		return 0
	case <-b.stop:
		// The subscriber is closing: its own wait ends on that at once.
		return b.poll
	}
}

// signal wakes the forwarder if it waits, or makes its next wait end at once;
// it never blocks.
func (b *wakeBackoff) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// close ends the current and every later wait; idempotent.
func (b *wakeBackoff) close() { b.once.Do(func() { close(b.stop) }) }

// wakingSubscriber is the outbox subscriber whose Close first ends the backoff's
// wait, so that closing the forwarder does not wait for the fallback poll.
type wakingSubscriber struct {
	message.Subscriber
	backoff *wakeBackoff
}

// Close implements message.Subscriber.
func (s wakingSubscriber) Close() error {
	s.backoff.close()
	return s.Subscriber.Close()
}

// wakers are the backoffs of an outbox's forwarders.
type wakers struct {
	mu   sync.Mutex
	list []*wakeBackoff
}

func (w *wakers) add(b *wakeBackoff) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, b)
}

// signal wakes every forwarder of the outbox, without blocking.
func (w *wakers) signal() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.list {
		b.signal()
	}
}

// counts sums the idle waits begun and those wakes ended over the outbox's
// forwarders.
func (w *wakers) counts() (waits, woken int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.list {
		waits += b.waits.Load()
		woken += b.woken.Load()
	}
	return waits, woken
}
