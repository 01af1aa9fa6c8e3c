package consumer

import (
	"context"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/kafka"
)

// TestThrottle: with Throttle on, each consumer's stack starts with Watermill's
// throttle, and a burst through that stack is spread: the k-th message (from
// 1) cannot enter the handler before k ticks (k*Per/MaxMessages) after the
// stack was built. This is a lower bound, which a slow machine cannot break
// (a ticker never ticks early); how close to the rate the throughput comes is
// a matter for benchmarks. With Throttle off, no throttle is in the stack.
func TestThrottle(t *testing.T) {
	t.Parallel()
	const n, interval = 4, 25 * time.Millisecond
	build := func(t *testing.T, throttle ThrottleConfig) []message.HandlerMiddleware {
		t.Helper()
		cs := unitConsumers(t, Config{Strategy: Block, Kafka: kafka.Config{Brokers: []string{"127.0.0.1:1"}}, Throttle: throttle})
		stack, err := cs.stack(handler{name: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return stack
	}
	isThrottle := func(mw message.HandlerMiddleware) bool {
		return strings.Contains(runtime.FuncForPC(reflect.ValueOf(mw).Pointer()).Name(), "Throttle")
	}

	t.Run("off", func(t *testing.T) {
		t.Parallel()
		for i, mw := range build(t, ThrottleConfig{}) {
			if isThrottle(mw) {
				t.Fatalf("middleware %d is a throttle; Throttle is off", i)
			}
		}
	})
	t.Run("on", func(t *testing.T) {
		t.Parallel()
		built := time.Now()
		stack := build(t, ThrottleConfig{MaxMessages: 1, Per: interval})
		if !isThrottle(stack[0]) {
			t.Fatalf("the stack does not start with the throttle")
		}
		var entered []time.Time
		h := func(*message.Message) ([]*message.Message, error) {
			entered = append(entered, time.Now())
			return nil, nil
		}
		for i := len(stack) - 1; i >= 0; i-- {
			h = stack[i](h)
		}
		for range n {
			msg := message.NewMessage("id", nil)
			msg.SetContext(context.Background())
			if _, err := h(msg); err != nil {
				t.Fatal(err)
			}
		}
		for k, at := range entered {
			if earliest := built.Add(time.Duration(k+1) * interval); at.Before(earliest) {
				t.Errorf("message %d entered the handler %v after the stack was built, before its tick at %v",
					k+1, at.Sub(built), earliest.Sub(built))
			}
		}
	})
}
