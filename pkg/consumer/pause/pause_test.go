package pause_test

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/consumertest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/consumer/pause"
)

// outage is a database outage a test switches on and off: while down, the
// handler and the pause prober both fail as an unreachable server does.
type outage struct {
	down                atomic.Bool
	attempts            atomic.Int64 // handler attempts while down
	probes              atomic.Int64
	probing, maxProbing atomic.Int64
}

func (o *outage) probe(context.Context) error {
	n := o.probing.Add(1)
	defer o.probing.Add(-1)
	for m := o.maxProbing.Load(); n > m && !o.maxProbing.CompareAndSwap(m, n); m = o.maxProbing.Load() {
	}
	o.probes.Add(1)
	if o.down.Load() {
		return fmt.Errorf("ping: %w", driver.ErrBadConn)
	}
	return nil
}

// TestPauseHoldsTheConsumerDuringAnOutage: during a database outage a
// consumer with the pause strategy tries each message in flight once (one per partition),
// then holds every partition while one prober pings; nothing is poisoned; when
// the database answers, every message is processed, in order per key. Under
// the block strategy, the same outage costs retries × redeliveries of the same
// message (shown by reaching many attempts).
func TestPauseHoldsTheConsumerDuringAnOutage(t *testing.T) {
	testenv.NeedsServers(t, "the pause strategy on Kafka and MariaDB")
	t.Parallel()
	const partitions = 2
	tests := []struct {
		mode string
		// during the outage: at most maxAttempts handler attempts by the time
		// probes were made (pause), or at least minAttempts (block)
		probes, maxAttempts, minAttempts int64
	}{
		{mode: "pause", probes: 8, maxAttempts: partitions},
		{mode: "block", minAttempts: 12},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			o := &outage{}
			o.down.Store(true)
			p, err := pause.New(pause.Config{ProbeMin: 10 * time.Millisecond, ProbeMax: 40 * time.Millisecond, Probe: o.probe})
			if err != nil {
				t.Fatal(err)
			}
			strategy := map[string]consumer.Strategy{"pause": p, "block": consumer.Block}[tt.mode]
			r := consumertest.New(t, func(c *consumer.Config) { c.Strategy = strategy }, func(r *consumertest.Rig) message.NoPublishHandlerFunc {
				return func(msg *message.Message) error {
					r.Attempt(msg)
					if o.down.Load() {
						o.attempts.Add(1)
						return fmt.Errorf("begin: %w", driver.ErrBadConn)
					}
					return r.Effect(msg)
				}
			})

			keys := consumertest.KeysOnPartitions(t, r.Topic, partitions)
			var sent []*message.Message
			for i := range 3 {
				for _, k := range keys {
					sent = append(sent, consumertest.Keyed(fmt.Sprintf("%s-%d-%s", k, i, watermill.NewShortUUID()), k))
				}
			}
			r.Publish(t, sent...)

			if tt.mode == "pause" {
				testenv.WaitFor(t, "the prober to probe", 60*time.Second, func() bool { return o.probes.Load() >= tt.probes })
				testenv.WaitFor(t, "both partitions held", 60*time.Second, func() bool {
					return p.Held("test") == partitions
				})
				if paused := p.Paused(); len(paused) != 1 || paused[0].Consumer != "test" || paused[0].Held != partitions || paused[0].Since.IsZero() {
					t.Fatalf("paused %+v, want consumer test with %d held", paused, partitions)
				}
				if n := o.attempts.Load(); n > tt.maxAttempts {
					t.Fatalf("%d handler attempts during the outage (after %d probes), want at most %d (one per partition)", n, o.probes.Load(), tt.maxAttempts)
				}
				t.Logf("pause: %d handler attempts and %d probes during the outage", o.attempts.Load(), o.probes.Load())
			} else {
				testenv.WaitFor(t, "the block consumer to retry", 60*time.Second, func() bool { return o.attempts.Load() >= tt.minAttempts })
				t.Logf("block: %d handler attempts during the outage (retries × redeliveries)", o.attempts.Load())
			}
			if n := testenv.TopicSize(t, r.Kafka, r.PoisonTopic); n != 0 {
				t.Fatalf("poison topic holds %d messages during the outage, want 0", n)
			}

			o.down.Store(false)
			for _, m := range sent {
				r.WaitEffect(t, m.UUID)
			}
			if paused := p.Paused(); len(paused) != 0 {
				t.Fatalf("paused %+v after the outage, want none", paused)
			}
			order := r.EffectOrder(t)
			for _, k := range keys {
				var want, got []string
				for _, m := range sent {
					if m.Metadata.Get("partition_key") == k {
						want = append(want, m.UUID)
					}
				}
				for _, id := range order {
					if slices.Contains(want, id) {
						got = append(got, id)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("key %s processed in order %v, want %v", k, got, want)
				}
			}
			if n := testenv.TopicSize(t, r.Kafka, r.PoisonTopic); n != 0 {
				t.Fatalf("poison topic holds %d messages, want 0", n)
			}
			if m := o.maxProbing.Load(); m > 1 {
				t.Fatalf("%d probes ran at once, want one prober", m)
			}
		})
	}
}
