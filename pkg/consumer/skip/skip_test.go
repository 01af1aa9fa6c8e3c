package skip_test

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/consumertest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/consumer/skip"
)

// TestSkipAcknowledgesAndMovesOn: with the skip strategy, a message that keeps
// failing is retried in place, then acknowledged without its effect, counted
// and not poisoned, and the partition moves on; a message whose database is
// unreachable for longer than one round of retries is not skipped: it comes
// back and takes effect.
func TestSkipAcknowledgesAndMovesOn(t *testing.T) {
	t.Parallel()
	bad, outage, next := watermill.NewUUID(), watermill.NewUUID(), watermill.NewUUID()
	sk := skip.New(skip.Config{})
	r := consumertest.New(t, func(c *consumer.Config) { c.Strategy = sk },
		func(r *consumertest.Rig) message.NoPublishHandlerFunc {
			return func(msg *message.Message) error {
				switch n := r.Attempt(msg); {
				case msg.UUID == bad:
					return errors.New("bug: constraint violated")
				case msg.UUID == outage && n <= 4: // 3 attempts per delivery
					return fmt.Errorf("attempt %d: %w", n, driver.ErrBadConn)
				}
				return r.Effect(msg)
			}
		})
	r.Publish(t, consumertest.MsgWithID(bad), consumertest.MsgWithID(outage), consumertest.MsgWithID(next)) // one key: in this order
	r.WaitEffect(t, next)
	if n := r.Effects(t, bad); n != 0 {
		t.Fatalf("the skipped message has %d effects, want 0", n)
	}
	if n := r.AttemptsOf(bad); n != 3 {
		t.Fatalf("the skipped message had %d attempts, want 3", n)
	}
	if n := r.Effects(t, outage); n != 1 {
		t.Fatalf("the message that met an outage has %d effects, want 1 (outages are never skipped)", n)
	}
	if n := sk.Skipped(); n != 1 {
		t.Fatalf("Skipped() = %d, want 1", n)
	}
	if n := testenv.TopicSize(t, r.Kafka, r.PoisonTopic); n != 0 {
		t.Fatalf("poison topic holds %d messages, want 0", n)
	}
}
