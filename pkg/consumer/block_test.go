package consumer_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/consumertest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/failure"
)

// TestBlockHoldsThePartition is what the Block strategy really does with a message
// that keeps failing (a bug), for a transient and a permanent error alike: it
// holds its partition (the message behind it, same key, is not processed)
// while another partition flows; it is delivered again and again, each
// delivery a full round of in-place retries (Retry.MaxRetries+1 attempts with
// backoff, permanent errors included), and never poisoned. Once the bug heals,
// the held message and the one behind it are processed, in that order.
func TestBlockHoldsThePartition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
	}{
		{"transient error", errors.New("bug: constraint violated")},
		{"permanent error", failure.Permanent(errors.New("bug: unknown state"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const attemptsPerDelivery = 3 // the rig's Retry.MaxRetries is 2
			held, behind, other := watermill.NewUUID(), watermill.NewUUID(), watermill.NewUUID()
			var healed atomic.Bool
			var mu sync.Mutex
			var deliveries []*message.Message // of the held message, in order
			perDelivery := map[*message.Message]int{}
			r := consumertest.New(t, func(c *consumer.Config) { c.Strategy = consumer.Block },
				func(r *consumertest.Rig) message.NoPublishHandlerFunc {
					return func(msg *message.Message) error {
						if msg.UUID == held && !healed.Load() {
							mu.Lock()
							if perDelivery[msg] == 0 { // Kafka's subscriber hands a new copy per delivery
								deliveries = append(deliveries, msg)
							}
							perDelivery[msg]++
							mu.Unlock()
							return tt.err
						}
						return r.Effect(msg)
					}
				})
			heldKey, otherKey := keysOnTwoPartitions(t, r.Topic)
			r.Publish(t, consumertest.Keyed(held, heldKey), consumertest.Keyed(behind, heldKey), consumertest.Keyed(other, otherKey))

			r.WaitEffect(t, other) // the other partition flows
			rounds := func() (done []int) {
				mu.Lock()
				defer mu.Unlock()
				for _, d := range deliveries[:max(len(deliveries)-1, 0)] { // the last may be running
					done = append(done, perDelivery[d])
				}
				return done
			}
			deadline := time.Now().Add(60 * time.Second)
			for len(rounds()) < 2 {
				if n := r.Effects(t, behind); n != 0 {
					t.Fatalf("the message behind the held one was processed while it was held (rounds %v)", rounds())
				}
				if time.Now().After(deadline) {
					t.Fatalf("the held message was not delivered 3 times within 60 s (rounds %v)", rounds())
				}
				time.Sleep(50 * time.Millisecond)
			}
			if n := r.Effects(t, behind); n != 0 {
				t.Fatalf("the message behind the held one was processed %d times while it was held", n)
			}
			for i, n := range rounds() {
				if n != attemptsPerDelivery {
					t.Fatalf("delivery %d of the held message had %d attempts, want %d (all rounds: %v)", i+1, n, attemptsPerDelivery, rounds())
				}
			}

			healed.Store(true)
			r.WaitEffect(t, behind)
			if got := r.EffectOrder(t); fmt.Sprint(got) != fmt.Sprint([]string{other, held, behind}) &&
				fmt.Sprint(got) != fmt.Sprint([]string{held, other, behind}) {
				t.Fatalf("effects in order %v, want held %s before behind %s, each once", got, held, behind)
			}
			if n := testenv.TopicSize(t, r.Kafka, r.PoisonTopic); n != 0 {
				t.Fatalf("poison topic holds %d messages, want 0", n)
			}
		})
	}
}

// keysOnTwoPartitions returns two keys that the services' publisher (sarama's
// hash partitioner) sends to different partitions of a two-partition topic.
func keysOnTwoPartitions(t *testing.T, topic string) (string, string) {
	t.Helper()
	p := sarama.NewHashPartitioner(topic)
	partitionOf := func(key string) int32 {
		n, err := p.Partition(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key)}, 2)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	first := "key-0"
	for i := 1; i < 100; i++ {
		if k := fmt.Sprintf("key-%d", i); partitionOf(k) != partitionOf(first) {
			return first, k
		}
	}
	t.Fatal("no two keys on different partitions")
	return "", ""
}
