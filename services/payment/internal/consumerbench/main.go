// Command consumerbench measures the payment consumer's rate on events already
// waiting in a topic, either behind the full consumer stack (router, recoverer,
// correlation, poison queue, retry, inbox: what the service runs) or on a bare
// loop that calls the same handler for each message. The forwarder runs in both
// modes. `make bench` runs it; it prints one JSON object. If the n events are
// not all processed within -timeout (start-up included), it says on stderr how
// many were and exits with status 1.
//
//	consumerbench -mode stack|bare -brokers 127.0.0.1:9092 -dsn ... -topic t -n 3000 -timeout 4m
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/payment/internal/app"
)

func main() {
	mode := flag.String("mode", "stack", "stack or bare")
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka brokers")
	dsn := flag.String("dsn", "", "payment database DSN (an empty database)")
	topic := flag.String("topic", "", "topic holding the OrderPlaced events")
	n := flag.Int("n", 1000, "events to process")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up if the n events are not processed by then (start-up included)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var done atomic.Int64
	rate, err := run(ctx, *mode, strings.Split(*brokers, ","), *dsn, *topic, *n, &done)
	if err != nil {
		fmt.Fprintf(os.Stderr, "consumerbench: %s mode, processed %d of %d events: %v\n", *mode, done.Load(), *n, err)
		cancel()
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"mode": *mode, "events": *n, "rate_per_s": rate})
}

// run processes n events of topic in the given mode, counting them in done,
// and returns the rate from the first to the n-th. It fails when ctx ends first.
func run(ctx context.Context, mode string, brokers []string, dsn, topic string, n int, done *atomic.Int64) (float64, error) {
	start := time.Now()
	logger := slog.New(slog.DiscardHandler)
	cfg := messaging.Config{
		DB:            messaging.DBConfig{DSN: dsn},
		Kafka:         messaging.KafkaConfig{Brokers: brokers, ClientID: "consumerbench"},
		ConsumerGroup: "consumerbench-" + mode + "-" + watermill.NewShortUUID(),
		PoisonTopic:   topic + ".poison",
	}
	db, err := messaging.OpenAndMigrate(ctx, cfg.DB, mariadb.Migrations, logger)
	if err != nil {
		return 0, err
	}
	outbox, err := messaging.NewOutbox(cfg.Outbox)
	if err != nil {
		return 0, err
	}
	wlog := watermill.NewSlogLogger(logger)
	kafkaOut, poisonOut := cfg.Kafka.NewPublisher(wlog), cfg.Kafka.NewPoisonPublisher(wlog)
	topics := messaging.NewTopics(cfg.Kafka, logger, messaging.TopicSpec{Name: cfg.PoisonTopic, Partitions: 1})
	consumers, err := messaging.NewConsumers(cfg, db, poisonOut, topics, logger)
	if err != nil {
		return 0, err
	}
	forwarder, err := outbox.NewForwarder(db, kafkaOut, wlog)
	if err != nil {
		return 0, err
	}
	parts := lifecycle.Parts{Consumers: consumers, Forwarder: forwarder, Clients: []io.Closer{kafkaOut, poisonOut, db}}
	if _, err := db.Exec(`INSERT INTO accounts (customer_id, balance_cents, currency)
		SELECT CONCAT('bench-', seq), 1000000000000, 'EUR' FROM seq_0_to_499`); err != nil {
		return 0, fmt.Errorf("seeding accounts: %w", err)
	}
	svc := app.New(mariadb.NewPayments(db, outbox, topic+".payments"), logger)

	var first atomic.Int64 // unix nanos of the first processed message
	finished := make(chan time.Time, 1)
	count := func() {
		first.CompareAndSwap(0, time.Now().UnixNano())
		if done.Add(1) == int64(n) {
			finished <- time.Now()
		}
	}
	handler := events.Handler(svc.HandleOrderEvent)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	switch mode {
	case "stack":
		consumers.Handle("bench", topic, func(msg *message.Message) error {
			if err := handler(msg); err != nil {
				return err
			}
			count()
			return nil
		})
		go func() { _ = lifecycle.New(lifecycle.Config{}, logger).Run(runCtx, parts) }()
	case "bare":
		go func() { _ = lifecycle.New(lifecycle.Config{}, logger).Run(runCtx, parts) }() // the forwarder, as in stack mode; no consumers registered
		sub, err := cfg.Kafka.Defaults().NewSubscriber(cfg.ConsumerGroup, watermill.NopLogger{})
		if err != nil {
			return 0, err
		}
		msgs, err := sub.Subscribe(runCtx, topic)
		if err != nil {
			return 0, err
		}
		// The same handler, each message in its own goroutine as Watermill's router
		// does (the subscriber sends a partition's next message only after the
		// previous one's Ack, so partitions are handled concurrently, in order).
		go func() {
			for msg := range msgs {
				go func() {
					for handler(msg) != nil { // retried until it succeeds
						time.Sleep(10 * time.Millisecond)
					}
					msg.Ack()
					count()
				}()
			}
		}()
	default:
		return 0, fmt.Errorf("unknown mode %q", mode)
	}
	select {
	case end := <-finished:
		elapsed := end.Sub(time.Unix(0, first.Load()))
		return float64(n-1) / elapsed.Seconds(), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("gave up after %s (-timeout): %w", time.Since(start).Round(time.Second), ctx.Err())
	}
}
