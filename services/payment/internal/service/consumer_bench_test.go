package service_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/servicedb"
	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/pkg/sqldb"
	kafkaadapter "github.com/onceflow/onceflow/services/payment/internal/adapters/kafka"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/payment/internal/app"
)

// The consumer benchmark's parameters, given by `make bench` to this package's
// test binary.
var (
	benchMode    = flag.String("bench.mode", "stack", "consumer benchmark: stack or bare")
	benchBrokers = flag.String("bench.brokers", "127.0.0.1:9092", "consumer benchmark: Kafka brokers")
	benchDSN     = flag.String("bench.dsn", "", "consumer benchmark: payment database DSN (an empty database)")
	benchTopic   = flag.String("bench.topic", "", "consumer benchmark: topic holding the OrderPlaced events (none: skip)")
	benchN       = flag.Int("bench.n", 1000, "consumer benchmark: events to process")
	benchTimeout = flag.Duration("bench.timeout", 5*time.Minute, "consumer benchmark: give up if the n events are not processed by then (start-up included)")
)

// BenchmarkConsumer measures the payment consumer's rate on events already
// waiting in a topic, either behind the full consumer stack (router, recoverer,
// correlation, poison queue, retry, inbox: what the service runs) or on a bare
// loop that calls the same handler for each message. The forwarder runs in both
// modes. It reports the rate from the first to the n-th processed event as the
// metric events/s. If the n events are not all processed within -bench.timeout
// (start-up included), it fails and says how many were.
//
// It is a benchmark next to the code it measures, not a command: it needs the
// service's internal packages, and is compiled only into this package's test
// binary. `make bench` (e2e/bench, phase "consumer") preloads a topic,
// creates an empty database, builds the binary with `go test -c` and runs it once
// per mode:
//
//	service.test -test.run '^$' -test.bench '^BenchmarkConsumer$' -test.benchtime 1x \
//	    -bench.mode stack|bare -bench.brokers 127.0.0.1:9092 -bench.dsn ... -bench.topic t -bench.n 3000 -bench.timeout 4m
//
// Without -bench.topic it is skipped (`go test -bench . ./...` needs no servers).
func BenchmarkConsumer(b *testing.B) {
	if *benchTopic == "" {
		b.Skip("needs a preloaded topic (-bench.topic): `make bench` runs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *benchTimeout)
	defer cancel()
	var done atomic.Int64
	rate, err := runConsumerBench(ctx, *benchMode, strings.Split(*benchBrokers, ","), *benchDSN, *benchTopic, *benchN, &done)
	if err != nil {
		b.Fatalf("consumer benchmark: %s mode, processed %d of %d events: %v", *benchMode, done.Load(), *benchN, err)
	}
	b.ReportMetric(rate, "events/s")
}

// runConsumerBench processes n events of topic in the given mode, counting them in done,
// and returns the rate from the first to the n-th. It fails when ctx ends first.
func runConsumerBench(ctx context.Context, mode string, brokers []string, dsn, topic string, n int, done *atomic.Int64) (float64, error) {
	start := time.Now()
	logger := slog.New(slog.DiscardHandler)
	cfg := servicemain.Messaging{
		DB:            sqldb.Config{DSN: dsn},
		Kafka:         kafka.Config{Brokers: brokers, ClientID: "consumerbench"},
		ConsumerGroup: "consumerbench-" + mode + "-" + watermill.NewShortUUID(),
		PoisonTopic:   topic + ".poison",
	}
	db, err := sqldb.OpenAndMigrate(ctx, cfg.DB, logger, servicedb.Migrations(mariadb.Migrations)...)
	if err != nil {
		return 0, err
	}
	ob := outbox.New()
	wlog := watermill.NewSlogLogger(logger)
	kafkaOut, poisonOut := cfg.Kafka.NewPublisher(wlog), cfg.Kafka.NewPoisonPublisher(wlog)
	topics := kafka.NewTopics(cfg.Kafka, logger, kafka.TopicSpec{Name: cfg.PoisonTopic, Partitions: 1})
	consumers, err := servicemain.NewConsumers(cfg, db, poisonOut, topics, nil, logger)
	if err != nil {
		return 0, err
	}
	forwarder, err := servicemain.NewForwarder(cfg, db, ob, kafkaOut, topics, nil, wlog)
	if err != nil {
		return 0, err
	}
	parts := lifecycle.Parts{Consumers: consumers, Forwarder: forwarder, Clients: []io.Closer{kafkaOut, poisonOut, db}}
	if _, err := db.Exec(`INSERT INTO accounts (customer_id, balance_cents, currency)
		SELECT CONCAT('bench-', seq), 1000000000000, 'EUR' FROM seq_0_to_499`); err != nil {
		return 0, fmt.Errorf("seeding accounts: %w", err)
	}
	svc := app.New(mariadb.NewPayments(db, ob, topic+".payments"), logger)

	var first atomic.Int64 // unix nanos of the first processed message
	finished := make(chan time.Time, 1)
	count := func() {
		first.CompareAndSwap(0, time.Now().UnixNano())
		if done.Add(1) == int64(n) {
			finished <- time.Now()
		}
	}
	handler := kafkaadapter.OrderEvents(svc)

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
		return 0, fmt.Errorf("gave up after %s (-bench.timeout): %w", time.Since(start).Round(time.Second), ctx.Err())
	}
}
