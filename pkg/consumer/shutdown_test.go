package consumer_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/consumertest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// stopRig is a consumer that the test stops and starts again on the same
// database, topic and consumer group, as a deploy does.
type stopRig struct {
	*consumertest.Rig
	config consumer.Config
	db     sqldb.Config
	stop   lifecycle.Config
}

func newStopRig(t *testing.T, drain time.Duration) *stopRig {
	t.Helper()
	r, cfg, db := consumertest.NewConfigPartitions(t, 1)
	return &stopRig{Rig: r, config: cfg, db: db, stop: lifecycle.Config{DrainTimeout: drain}}
}

// start runs consumers with handler; the test's cleanup stops them if the test
// did not.
func (r *stopRig) start(t *testing.T, handler message.NoPublishHandlerFunc) *consumertest.Running {
	t.Helper()
	run := consumertest.Start(t, r.config, r.db, r.stop, r.Topic, handler)
	r.Consumers = run.Consumers
	t.Cleanup(func() { run.Cancel(); err := <-run.Done; run.Done <- err })
	return run
}

// shutDown sends the stop signal to run, waits until the lifecycle reports it
// is stopping, and returns a function that waits for Run to return: within the
// drain bound plus a margin for the test machine, or the test fails.
func shutDown(t *testing.T, run *consumertest.Running, bound time.Duration) func() {
	t.Helper()
	run.Cancel()
	ready := run.Lifecycle.Ready(func(context.Context) error { return nil })
	for ready(context.Background()) == nil {
		time.Sleep(5 * time.Millisecond)
	}
	return func() {
		t.Helper()
		select {
		case err := <-run.Done:
			run.Done <- err // for the cleanup
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
		if r.Attempt(msg) == 1 {
			entered <- struct{}{}
			<-release
		}
		return r.Effect(msg)
	})
	id := watermill.NewUUID()
	r.Publish(t, consumertest.MsgWithID(id))
	<-entered
	wait := shutDown(t, run, drain)
	close(release) // the stop has begun: the handler goes on from here
	wait()

	if got := r.Effects(t, id); got != 1 {
		t.Fatalf("effects of the in-flight message = %d, want 1 (its transaction must commit)", got)
	}
	if n := testenv.TopicSize(t, r.Kafka, r.PoisonTopic); n != 0 {
		t.Fatalf("poison topic holds %d messages after a stop, want 0", n)
	}
	// Restarted: the message was acknowledged, so only the marker comes.
	r.start(t, func(msg *message.Message) error { r.Attempt(msg); return r.Effect(msg) })
	marker := watermill.NewUUID()
	r.Publish(t, consumertest.MsgWithID(marker))
	r.WaitEffect(t, marker)
	if got := r.AttemptsOf(id); got != 1 {
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
		if r.Attempt(msg) == 1 {
			// Write the effect, then hang until the stop gives up on us.
			err := sqldb.InTx(msg.Context(), r.DB, func(ctx context.Context, tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, "INSERT INTO effects (message_id) VALUES (?)", msg.UUID); err != nil {
					return err
				}
				entered <- struct{}{}
				<-ctx.Done()
				return ctx.Err()
			})
			return err
		}
		return r.Effect(msg)
	})
	id := watermill.NewUUID()
	r.Publish(t, consumertest.MsgWithID(id))
	<-entered
	shutDown(t, run, drain)()

	if got := r.Effects(t, id); got != 0 {
		t.Fatalf("effects of the abandoned message = %d, want 0 (rolled back)", got)
	}
	if n := testenv.TopicSize(t, r.Kafka, r.PoisonTopic); n != 0 {
		t.Fatalf("poison topic holds %d messages after the stop abandoned one, want 0", n)
	}
	r.start(t, func(msg *message.Message) error { r.Attempt(msg); return r.Effect(msg) })
	r.WaitEffect(t, id)
	if got := r.Effects(t, id); got != 1 {
		t.Fatalf("effects after the redelivery = %d, want 1", got)
	}
	if got := r.AttemptsOf(id); got != 2 {
		t.Fatalf("handler runs = %d, want 2 (abandoned, then redelivered after the restart)", got)
	}
}
