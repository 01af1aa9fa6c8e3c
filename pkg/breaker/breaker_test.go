package breaker_test

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/sony/gobreaker"

	"github.com/onceflow/onceflow/pkg/breaker"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// breakerUnderTest calls through a breaker (a consumer's or the forwarder
// publisher's) and counts the calls that reached what it guards.
type breakerUnderTest struct {
	call    func(fail error) error // fail: what the guarded call returns
	reached int
}

// retryable is what a forwarder's breaker counts: a refusal retrying may fix.
func retryable(err error) bool { return kafka.UnfixableReason(err, "", nil) == "" }

func consumerBreaker(c breaker.Config) *breakerUnderTest {
	b := &breakerUnderTest{}
	var fail error
	h := message.HandlerFunc(func(*message.Message) ([]*message.Message, error) { b.reached++; return nil, fail })
	mws := breaker.Middleware(c, "consumer test", failure.IsUnavailable, watermill.NopLogger{})
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	b.call = func(f error) error { fail = f; _, err := h(message.NewMessage("m", nil)); return err }
	return b
}

type fakePublisher struct {
	reached *int
	fail    *error
}

func (p fakePublisher) Publish(string, ...*message.Message) error { *p.reached++; return *p.fail }
func (p fakePublisher) Close() error                              { return nil }

func publisherBreaker(c breaker.Config) *breakerUnderTest {
	b := &breakerUnderTest{}
	var fail error
	pub := breaker.Publisher(c, "forwarder publisher", fakePublisher{reached: &b.reached, fail: &fail}, retryable, watermill.NopLogger{})
	b.call = func(f error) error { fail = f; return pub.Publish("t", message.NewMessage("m", nil)) }
	return b
}

// TestBreakerOpensFailsFastHalfOpensCloses: both breakers open after
// Failures consecutive failures of the kind they count, then fail at once with
// an error failure.IsUnavailable recognises (never poisoned; for the
// forwarder, not a refusal that parks the row, so the row stays), let one probe through after OpenDuration
// and close when it succeeds. Failures of the other kind never open them.
func TestBreakerOpensFailsFastHalfOpensCloses(t *testing.T) {
	t.Parallel()
	c := breaker.Config{Enabled: true, Failures: 3, OpenDuration: 20 * time.Millisecond, HalfOpenProbes: 1}
	tests := []struct {
		name            string
		breaker         func(breaker.Config) *breakerUnderTest
		counted, ignore error
	}{
		{"consumer", consumerBreaker, fmt.Errorf("begin: %w", driver.ErrBadConn), failure.Permanent(errors.New("bad message"))},
		{"forwarder publisher", publisherBreaker, sarama.ErrOutOfBrokers, sarama.ErrMessageSizeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tt.breaker(c)
			for range 10 {
				_ = b.call(tt.ignore)
			}
			if b.reached != 10 {
				t.Fatalf("%d of 10 calls failing with %v went through, want all (it must not count)", b.reached, tt.ignore)
			}
			b.reached = 0
			for range 3 {
				_ = b.call(tt.counted)
			}
			err := b.call(tt.counted)
			if b.reached != 3 || !errors.Is(err, gobreaker.ErrOpenState) {
				t.Fatalf("after 3 failures: %d calls went through and the 4th returned %v, want 3 and an open breaker", b.reached, err)
			}
			if !failure.IsUnavailable(err) || kafka.UnfixableReason(err, "t", nil) != "" {
				t.Fatalf("open breaker's error %v: IsUnavailable %v, unfixable reason %q; want an outage, not unfixable", err, failure.IsUnavailable(err), kafka.UnfixableReason(err, "t", nil))
			}
			// Half-open after OpenDuration: the first call goes through; it
			// succeeds, the breaker closes.
			deadline := time.Now().Add(10 * time.Second)
			for b.reached == 3 {
				if time.Now().After(deadline) {
					t.Fatal("the breaker never let a probe through")
				}
				time.Sleep(5 * time.Millisecond)
				err = b.call(nil)
			}
			if err != nil {
				t.Fatalf("probe: %v", err)
			}
			for range 2 {
				if err := b.call(tt.counted); errors.Is(err, gobreaker.ErrOpenState) {
					t.Fatal("the breaker is open again after a successful probe; want closed")
				}
			}
			if b.reached != 6 {
				t.Fatalf("%d calls went through, want 6 (closed after the probe)", b.reached)
			}
		})
	}
}
