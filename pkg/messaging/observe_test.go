package messaging_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/messaging"
)

// hookLog records what messaging.Hooks are told.
type hookLog struct {
	mu         sync.Mutex
	retries    int
	duplicates int
	poisoned   map[string]int
	routers    int
}

func (l *hookLog) hooks() messaging.Hooks {
	return messaging.Hooks{
		Retried:   func() { l.mu.Lock(); l.retries++; l.mu.Unlock() },
		Duplicate: func() { l.mu.Lock(); l.duplicates++; l.mu.Unlock() },
		Poisoned:  func(r string) { l.mu.Lock(); l.poisoned[r]++; l.mu.Unlock() },
	}
}

// TestConsumerHooksReportWhatHappens: on one partition, a message that fails
// twice and then succeeds (two retries), a message refused for good (poisoned
// at once, with its reason code, no retry), a message delivered twice (one
// duplicate) and a marker. The hooks must be told exactly that, and the
// router hook must have seen the router.
func TestConsumerHooksReportWhatHappens(t *testing.T) {
	t.Parallel()
	log := &hookLog{poisoned: map[string]int{}}
	flaky, bad, dup, marker := watermill.NewUUID(), watermill.NewUUID(), watermill.NewUUID(), watermill.NewUUID()
	r := newConsumerRig(t, func(r *consumerRig) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			switch {
			case msg.UUID == bad:
				return failure.PermanentCode("bad_thing", errors.New("refused for good"))
			case msg.UUID == flaky && r.attempt(msg) <= 2:
				return errors.New("transient failure")
			}
			return r.effect(msg)
		}
	}, func(cs *messaging.Consumers) {
		cs.SetHooks(log.hooks())
		cs.OnRouter(func(*message.Router) { log.mu.Lock(); log.routers++; log.mu.Unlock() })
	})
	r.publish(t, msgWithID(flaky), msgWithID(bad), msgWithID(dup), msgWithID(dup), msgWithID(marker))
	waitEffect(t, r, marker) // one key, one partition: everything before it was handled
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.retries != 2 || log.duplicates != 1 || len(log.poisoned) != 1 || log.poisoned["bad_thing"] != 1 || log.routers != 1 {
		t.Fatalf("hooks told retries=%d duplicates=%d poisoned=%v routers=%d; want 2, 1, map[bad_thing:1], 1",
			log.retries, log.duplicates, log.poisoned, log.routers)
	}
}
