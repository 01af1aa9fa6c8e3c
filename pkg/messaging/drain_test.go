package messaging_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// stopRig is a consumer that the test stops and starts again on the same
// database, topic and consumer group, as a deploy does.
type stopRig struct {
	*consumerRig
	config messaging.Config
	stop   lifecycle.Config
}

func newStopRig(t *testing.T, drain time.Duration) *stopRig {
	t.Helper()
	kc := testenv.Kafka(t)
	topics := testenv.Topics(t, kc, 1, "events", "poison")
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	return &stopRig{
		consumerRig: &consumerRig{kafka: kc, topic: topics[0], poisonTopic: topics[1], db: d.Admin, attempts: map[string]int{}},
		config: messaging.Config{
			DB:            d.DBConfig(),
			Kafka:         kc,
			Retry:         messaging.RetryConfig{MaxRetries: 2, InitialInterval: 20 * time.Millisecond, MaxInterval: 50 * time.Millisecond},
			ConsumerGroup: testenv.Group(t, kc, "group"),
			PoisonTopic:   topics[1],
		},
		stop: lifecycle.Config{DrainTimeout: drain},
	}
}

// start runs consumers with handler; the test's cleanup stops them if the test
// did not.
func (r *stopRig) start(t *testing.T, handler message.NoPublishHandlerFunc) *running {
	t.Helper()
	run := startConsumers(t, r.config, r.stop, r.topic, handler, nil)
	r.consumers = run.consumers
	t.Cleanup(func() { run.cancel(); err := <-run.done; run.done <- err })
	return run
}

// stop sends the stop signal, waits until the lifecycle reports it is
// stopping, and returns a function that waits for Run to return: within the
// drain bound plus a margin for the test machine, or the test fails.
func (run *running) stop(t *testing.T, bound time.Duration) func() {
	t.Helper()
	run.cancel()
	ready := run.lifecycle.Ready(func(context.Context) error { return nil })
	for ready(context.Background()) == nil {
		time.Sleep(5 * time.Millisecond)
	}
	return func() {
		t.Helper()
		select {
		case err := <-run.done:
			run.done <- err // for the cleanup
			if err != nil {
				t.Fatalf("Run returned %v, want nil after a clean stop", err)
			}
		case <-time.After(bound + 5*time.Second):
			t.Fatalf("Run did not return within the drain bound %s (+5 s margin)", bound)
		}
	}
}

// TestStopLetsInFlightHandlerFinish: a handler is in flight when the consumers are
// stopped; it is let go only after the stop began. Its effect commits, the
// message is acknowledged (restarted consumers do not get it again), nothing
// is poisoned, and Run returns within the drain bound.
func TestStopLetsInFlightHandlerFinish(t *testing.T) {
	testenv.NeedsServers(t, "stop drains in-flight handlers")
	const drain = 10 * time.Second
	r := newStopRig(t, drain)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	run := r.start(t, func(msg *message.Message) error {
		if r.attempt(msg) == 1 {
			entered <- struct{}{}
			<-release
		}
		return r.effect(msg)
	})
	id := watermill.NewUUID()
	r.publish(t, msgWithID(id))
	<-entered
	wait := run.stop(t, drain)
	close(release) // the stop has begun: the handler goes on from here
	wait()

	if got := r.effects(t, id); got != 1 {
		t.Fatalf("effects of the in-flight message = %d, want 1 (its transaction must commit)", got)
	}
	if n := testenv.TopicSize(t, r.kafka, r.poisonTopic); n != 0 {
		t.Fatalf("poison topic holds %d messages after a stop, want 0", n)
	}
	// Restarted: the message was acknowledged, so only the marker comes.
	r.start(t, func(msg *message.Message) error { r.attempt(msg); return r.effect(msg) })
	marker := watermill.NewUUID()
	r.publish(t, msgWithID(marker))
	waitEffect(t, r.consumerRig, marker)
	if got := r.attemptsOf(id); got != 1 {
		t.Fatalf("the drained message was handled %d times, want 1 (acknowledged before the stop ended)", got)
	}
}

// TestStopAbandonsWorkPastTheDrainBound: a handler that outlives the drain
// bound is abandoned: its transaction rolls back, it is not poisoned, Run
// returns within the bound, and after a restart the message is delivered again
// and takes effect once.
func TestStopAbandonsWorkPastTheDrainBound(t *testing.T) {
	testenv.NeedsServers(t, "stop abandons work past the drain bound")
	const drain = 3 * time.Second
	r := newStopRig(t, drain)
	entered := make(chan struct{}, 1)
	run := r.start(t, func(msg *message.Message) error {
		if r.attempt(msg) == 1 {
			// Write the effect, then hang until the stop gives up on us.
			err := sqldb.InTx(msg.Context(), r.db, func(ctx context.Context, tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, "INSERT INTO effects (message_id) VALUES (?)", msg.UUID); err != nil {
					return err
				}
				entered <- struct{}{}
				<-ctx.Done()
				return ctx.Err()
			})
			return err
		}
		return r.effect(msg)
	})
	id := watermill.NewUUID()
	r.publish(t, msgWithID(id))
	<-entered
	run.stop(t, drain)()

	if got := r.effects(t, id); got != 0 {
		t.Fatalf("effects of the abandoned message = %d, want 0 (rolled back)", got)
	}
	if n := testenv.TopicSize(t, r.kafka, r.poisonTopic); n != 0 {
		t.Fatalf("poison topic holds %d messages after the stop abandoned one, want 0", n)
	}
	r.start(t, func(msg *message.Message) error { r.attempt(msg); return r.effect(msg) })
	waitEffect(t, r.consumerRig, id)
	if got := r.effects(t, id); got != 1 {
		t.Fatalf("effects after the redelivery = %d, want 1", got)
	}
	if got := r.attemptsOf(id); got != 2 {
		t.Fatalf("handler runs = %d, want 2 (abandoned, then redelivered after the restart)", got)
	}
}
