package consumer_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/consumertest"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/failure"
)

// hookLog records what consumer.Hooks are told.
type hookLog struct {
	mu         sync.Mutex
	retries    int
	duplicates int
	poisoned   map[string]int
	routers    int
}

func (l *hookLog) hooks() consumer.Hooks {
	return consumer.Hooks{
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
	r := consumertest.New(t, func(c *consumer.Config) {
		c.Hooks = log.hooks()
		c.OnRouter = func(*message.Router) { log.mu.Lock(); log.routers++; log.mu.Unlock() }
	}, func(r *consumertest.Rig) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			switch {
			case msg.UUID == bad:
				return failure.PermanentCode("bad_thing", errors.New("refused for good"))
			case msg.UUID == flaky && r.Attempt(msg) <= 2:
				return errors.New("transient failure")
			}
			return r.Effect(msg)
		}
	})
	r.Publish(t, consumertest.MsgWithID(flaky), consumertest.MsgWithID(bad), consumertest.MsgWithID(dup), consumertest.MsgWithID(dup), consumertest.MsgWithID(marker))
	r.WaitEffect(t, marker) // one key, one partition: everything before it was handled
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.retries != 2 || log.duplicates != 1 || len(log.poisoned) != 1 || log.poisoned["bad_thing"] != 1 || log.routers != 1 {
		t.Fatalf("hooks told retries=%d duplicates=%d poisoned=%v routers=%d; want 2, 1, map[bad_thing:1], 1",
			log.retries, log.duplicates, log.poisoned, log.routers)
	}
}
