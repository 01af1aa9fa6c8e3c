package consumer

import (
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/kafka"
)

// TestRetryingListsADeliveryUntilItEnds: a failed attempt lists the delivery
// under its key with its next try (none once the retries are spent); the
// delivery's end removes it.
func TestRetryingListsADeliveryUntilItEnds(t *testing.T) {
	r := newRetrying(RetryConfig{MaxRetries: 2, InitialInterval: time.Second, MaxInterval: 3 * time.Second, Multiplier: 2}.Defaults())
	msg := message.NewMessage("m-1", nil)
	msg.Metadata.Set(kafka.MetadataKey, "order-1")
	cases := []struct {
		attempt  int
		wantWait time.Duration // 0: no next try
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 0}}
	for _, c := range cases {
		before := time.Now()
		r.failed("payment.order-events", msg, c.attempt, errors.New("boom"))
		got := r.ofKey("order-1")
		if len(got) != 1 || got[0].Attempts != c.attempt || got[0].MessageID != "m-1" || got[0].ReasonCode == "" {
			t.Fatalf("attempt %d: retrying %+v", c.attempt, got)
		}
		switch next := got[0].NextTry; {
		case c.wantWait == 0 && !next.IsZero():
			t.Fatalf("attempt %d: next try %s, want none (retries spent)", c.attempt, next)
		case c.wantWait > 0 && (next.Before(before.Add(c.wantWait)) || next.After(time.Now().Add(c.wantWait))):
			t.Fatalf("attempt %d: next try in %s, want %s", c.attempt, next.Sub(before), c.wantWait)
		}
	}
	if other := r.ofKey("order-2"); len(other) != 0 {
		t.Fatalf("another key: %+v", other)
	}
	r.ended(msg)
	if got := r.ofKey("order-1"); len(got) != 0 {
		t.Fatalf("after the delivery ended: %+v", got)
	}
}
