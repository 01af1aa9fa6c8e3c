package messaging_test

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/messaging"
)

// TestSkipAcknowledgesAndMovesOn: with FailureSkip, a message that keeps
// failing is retried in place, then acknowledged without its effect, counted
// and not poisoned, and the partition moves on; a message whose database is
// unreachable for longer than one round of retries is not skipped: it comes
// back and takes effect.
func TestSkipAcknowledgesAndMovesOn(t *testing.T) {
	t.Parallel()
	bad, outage, next := watermill.NewUUID(), watermill.NewUUID(), watermill.NewUUID()
	r := newConsumerRigWith(t, func(c *messaging.Config) { c.FailureMode = messaging.FailureSkip },
		func(r *consumerRig) message.NoPublishHandlerFunc {
			return func(msg *message.Message) error {
				switch n := r.attempt(msg); {
				case msg.UUID == bad:
					return errors.New("bug: constraint violated")
				case msg.UUID == outage && n <= 4: // 3 attempts per delivery
					return fmt.Errorf("attempt %d: %w", n, driver.ErrBadConn)
				}
				return r.effect(msg)
			}
		}, nil)
	r.publish(t, msgWithID(bad), msgWithID(outage), msgWithID(next)) // one key: in this order
	waitEffect(t, r, next)
	if n := r.effects(t, bad); n != 0 {
		t.Fatalf("the skipped message has %d effects, want 0", n)
	}
	if n := r.attemptsOf(bad); n != 3 {
		t.Fatalf("the skipped message had %d attempts, want 3", n)
	}
	if n := r.effects(t, outage); n != 1 {
		t.Fatalf("the message that met an outage has %d effects, want 1 (outages are never skipped)", n)
	}
	if n := r.consumers.Skipped(); n != 1 {
		t.Fatalf("Skipped() = %d, want 1", n)
	}
	if n := testenv.TopicSize(t, r.kafka, r.poisonTopic); n != 0 {
		t.Fatalf("poison topic holds %d messages, want 0", n)
	}
}

// TestHangingHandlerIsPoisonedAsTimeout: a handler that hangs on every attempt
// is a bug, not an outage: each attempt ends at HandlerTimeout, is retried, and
// the message lands in the poison topic with reason code handler_timeout; the
// next message goes through.
func TestHangingHandlerIsPoisonedAsTimeout(t *testing.T) {
	t.Parallel()
	hanging, next := watermill.NewUUID(), watermill.NewUUID()
	r := newConsumerRigWith(t, func(c *messaging.Config) { c.HandlerTimeout = 200 * time.Millisecond },
		func(r *consumerRig) message.NoPublishHandlerFunc {
			return func(msg *message.Message) error {
				r.attempt(msg)
				if msg.UUID == hanging {
					<-msg.Context().Done()
					return msg.Context().Err()
				}
				return r.effect(msg)
			}
		}, nil)
	r.publish(t, msgWithID(hanging), msgWithID(next))
	waitEffect(t, r, next)
	poisoned := testenv.ReadTopic(t, r.kafka, r.poisonTopic, 1, 30*time.Second)
	if len(poisoned) != 1 || poisoned[0].UUID != hanging {
		t.Fatalf("poison topic holds %d messages, want the hanging one", len(poisoned))
	}
	if got := poisoned[0].Metadata.Get(failure.MetadataReasonCode); got != messaging.ReasonHandlerTimeout {
		t.Errorf("reason_code = %q, want %q", got, messaging.ReasonHandlerTimeout)
	}
	if reason := poisoned[0].Metadata.Get(middleware.ReasonForPoisonedKey); !strings.Contains(reason, "timeout") {
		t.Errorf("reason_poisoned = %q, want it to mention the timeout", reason)
	}
	if n := r.attemptsOf(hanging); n != 3 {
		t.Errorf("attempts = %d, want 3 (retried like any failure)", n)
	}
}
