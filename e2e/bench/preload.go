package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// preloadAttempts is how many fresh topics preload tries before it gives up.
const preloadAttempts = 3

// preload puts msgs into a new topic named prefix-<random>, each exactly once,
// and returns the topic's name. It publishes them with a batching producer and
// reads the topic back (checkTopic). It never sends a message into the same
// topic again: a message whose acknowledgement was lost may have been written
// after all, and a second copy would be a duplicate. If the check fails, it
// deletes the topic and starts over in a fresh one, at most preloadAttempts
// times; its error then says what the last topic held.
func preload(ctx context.Context, kc kafka.Config, prefix string, msgs []*message.Message) (string, error) {
	want := make([]string, len(msgs))
	for i, m := range msgs {
		want[i] = m.UUID
	}
	var err error
	for attempt := 1; attempt <= preloadAttempts && ctx.Err() == nil; attempt++ {
		topic := prefix + "-" + strings.ToLower(watermill.NewShortUUID()[:6])
		if err = preloadInto(ctx, kc, topic, msgs, want); err == nil {
			return topic, nil
		}
		say("  preload attempt %d of %d: %v; deleting %s", attempt, preloadAttempts, err, topic)
		deleteTopic(kc, topic)
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("preloading %d events: %w (last attempt: %w)", len(msgs), ctx.Err(), err)
	}
	return "", fmt.Errorf("preloading %d events: no exact topic in %d attempts; last: %w", len(msgs), preloadAttempts, err)
}

// preloadInto creates topic, waits until each partition has a leader, publishes
// msgs once and checks that the topic holds exactly want.
func preloadInto(ctx context.Context, kc kafka.Config, topic string, msgs []*message.Message, want []string) error {
	if err := kc.EnsureTopics(ctx, []kafka.TopicSpec{{Name: topic, Partitions: events.DefaultPartitions}}); err != nil {
		return err
	}
	if err := waitLeaders(ctx, kc, topic, events.DefaultPartitions); err != nil {
		return err
	}
	failed, first, err := publishAsync(ctx, kc, topic, msgs)
	if err != nil {
		return err
	}
	if failed > 0 {
		say("  %d of %d message(s) not acknowledged (first: %v); checking what %s holds", failed, len(msgs), first, topic)
	}
	return checkTopic(kc, topic, want)
}

// waitLeaders waits up to 30 s (less if ctx ends first) until the broker names
// a leader for each of the topic's partitions: a topic just created may have
// none for a moment, and a produce to it then fails.
func waitLeaders(ctx context.Context, kc kafka.Config, topic string, partitions int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client, err := sarama.NewClient(kc.Brokers, kc.ProducerConfig())
	if err != nil {
		return err
	}
	defer client.Close()
	for {
		err := client.RefreshMetadata(topic)
		if err == nil {
			var ps []int32
			if ps, err = client.WritablePartitions(topic); err == nil && len(ps) < partitions {
				err = fmt.Errorf("%d of %d partitions have a leader", len(ps), partitions)
			}
		}
		if err == nil {
			return nil
		}
		if sleep(ctx, 200*time.Millisecond) != nil {
			return fmt.Errorf("topic %s not ready: %w", topic, err)
		}
	}
}

// publishAsync sends each of msgs once through a batching producer, keyed like
// the services do, and returns how many the producer reported as not delivered
// (and the first such error); a message reported so may still have been
// written. err is for failures to publish at all (or ctx ending).
//
// The producer is the services' configuration without idempotence: sarama's
// idempotent async producer failed a few messages of most preloads here with
// "out of order sequence number". Without it, a retry after a lost
// acknowledgement can write a message twice, which checkTopic catches.
func publishAsync(ctx context.Context, kc kafka.Config, topic string, msgs []*message.Message) (failed int, first, err error) {
	cfg := kc.ProducerConfig()
	cfg.Producer.Idempotent = false
	p, err := sarama.NewAsyncProducer(kc.Brokers, cfg)
	if err != nil {
		return 0, nil, err
	}
	successes, errs := make(chan struct{}), make(chan struct{})
	var nFailed int
	var firstErr error // both read only once errs is closed
	go func() {
		for range p.Successes() {
		}
		close(successes)
	}()
	go func() {
		for e := range p.Errors() {
			if nFailed == 0 {
				firstErr = e.Err
			}
			nFailed++
		}
		close(errs)
	}()
	marshaler := kafka.Marshaler(true)
	for _, m := range msgs {
		km, err := marshaler.Marshal(topic, m)
		if err != nil {
			p.AsyncClose()
			return 0, nil, err
		}
		select {
		case p.Input() <- km:
		case <-ctx.Done():
			p.AsyncClose()
			return 0, nil, ctx.Err()
		}
	}
	p.AsyncClose()
	for _, ch := range []chan struct{}{successes, errs} {
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
	return nFailed, firstErr, nil
}

// checkTopic returns nil if topic holds exactly the messages whose UUIDs are
// want, each once: the sum over partitions of newest−oldest offsets is
// len(want), and the UUIDs read back (harness.ReadAll) are want, each once.
// Otherwise its error says what the topic held.
func checkTopic(kc kafka.Config, topic string, want []string) error {
	size, err := testenv.MessageCount(kc, topic)
	if err != nil {
		return fmt.Errorf("offsets of %s: %w", topic, err)
	}
	msgs, err := harness.ReadAll(kc, topic)
	if err != nil {
		return fmt.Errorf("reading %s back: %w", topic, err)
	}
	got := make([]string, len(msgs))
	for i, m := range msgs {
		got[i] = m.UUID
	}
	missing, extra := diffIDs(want, got)
	if size != int64(len(want)) || missing > 0 || extra > 0 {
		return fmt.Errorf("topic %s holds %d message(s) by its offsets and %d read back, for %d expected: %d missing, %d extra (repeated or unknown)",
			topic, size, len(got), len(want), missing, extra)
	}
	return nil
}

// diffIDs compares the UUIDs read from a topic (got) with the expected ones:
// missing counts expected UUIDs not read; extra counts what was read beyond one
// copy of each expected UUID (repeats, or UUIDs not expected).
func diffIDs(want, got []string) (missing, extra int) {
	seen := make(map[string]int, len(got))
	for _, id := range got {
		seen[id]++
	}
	for _, id := range want {
		if seen[id] == 0 {
			missing++
			continue
		}
		seen[id]--
	}
	for _, n := range seen {
		extra += n
	}
	return missing, extra
}

// deleteTopic deletes topic, saying (not returning) why it could not.
func deleteTopic(kc kafka.Config, topic string) {
	admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.ProducerConfig())
	if err != nil {
		say("  deleting %s: %v", topic, err)
		return
	}
	defer admin.Close()
	if err := admin.DeleteTopic(topic); err != nil {
		say("  deleting %s: %v", topic, err)
	}
}
