// The baselines phase: what the servers do without the services (MariaDB
// commits of an order-shaped transaction, Kafka produce rates and latency).

package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/servicedb"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

func (b *bench) baselines(ctx context.Context, r *Report) error {
	say("baseline: MariaDB commit rate of an order-shaped transaction")
	rate, err := commitRate(ctx, 32, 8*time.Second)
	if err != nil {
		return fmt.Errorf("commit rate: %w", err)
	}
	r.Baselines.CommitRate, r.Baselines.CommitConcurrency = rate, 32
	say("baseline: raw produce rates and latency (acks=all, idempotent)")
	r.Baselines.ProduceSync, r.Baselines.ProduceAsync, r.Baselines.KafkaP99Ms, err = kafkaBaselines(ctx, b.kafka)
	return err
}

// commitRate measures transactions/s of INSERT order row + INSERT outbox row
// (through outbox.Outbox, the services' code), at the given concurrency.
func commitRate(ctx context.Context, concurrency int, d time.Duration) (float64, error) {
	db, err := freshDB(infra.OrderDBAddr(), "bench_commits")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(concurrency)
	if err := sqldb.Migrate(ctx, db, slog.New(slog.DiscardHandler), servicedb.Migrations(nil)...); err != nil {
		return 0, err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE orders (id VARCHAR(64) PRIMARY KEY, customer_id VARCHAR(64) NOT NULL,
		amount_cents BIGINT NOT NULL, currency CHAR(3) NOT NULL, status VARCHAR(16) NOT NULL,
		cancel_reason VARCHAR(255) NOT NULL DEFAULT '', paid BOOLEAN NOT NULL DEFAULT FALSE,
		refunded BOOLEAN NOT NULL DEFAULT FALSE, version INT NOT NULL, created_at TIMESTAMP(6) NOT NULL,
		updated_at TIMESTAMP(6) NOT NULL, KEY (customer_id, created_at), KEY (status, created_at))`); err != nil {
		return 0, err
	}
	ob := outbox.New()
	var n atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				id := fmt.Sprintf("%d-%d-%s", w, i, watermill.NewShortUUID())
				err := sqldb.InTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error {
					now := time.Now().UTC()
					if _, err := tx.ExecContext(ctx, `INSERT INTO orders (id, customer_id, amount_cents, currency, status,
						version, created_at, updated_at) VALUES (?, 'c-1', 100, 'EUR', 'PENDING', 1, ?, ?)`, id, now, now); err != nil {
						return err
					}
					return events.Write(ctx, ob, tx, "orders", events.Event{ID: watermill.NewUUID(), OrderID: id,
						OrderVersion: 1, OccurredAt: now, Payload: events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 100, Currency: "EUR"}}})
				})
				if err != nil {
					errs <- err
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := <-errs; err != nil {
		return 0, err
	}
	return round(float64(n.Load())/d.Seconds(), 0), nil
}

func freshDB(addr, name string) (*sql.DB, error) {
	admin, err := sql.Open("mysql", testenv.DSN(addr, ""))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if _, err := admin.Exec("DROP DATABASE IF EXISTS `" + name + "`"); err != nil {
		return nil, err
	}
	if _, err := admin.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		return nil, err
	}
	return sql.Open("mysql", testenv.DSN(addr, name))
}

// kafkaBaselines measures the raw produce rate with the services' producer
// settings, synchronously (one message at a time, like Watermill's publisher) and
// asynchronously (batched), and the produce→consume p99 at a low rate.
func kafkaBaselines(ctx context.Context, kc kafka.Config) (syncRate, asyncRate, p99ms float64, err error) {
	topic := "bench-raw-" + strings.ToLower(watermill.NewShortUUID()[:6])
	if err := kc.EnsureTopics(ctx, []kafka.TopicSpec{{Name: topic, Partitions: events.DefaultPartitions}}); err != nil {
		return 0, 0, 0, err
	}
	if err := waitLeaders(ctx, kc, topic, events.DefaultPartitions); err != nil {
		return 0, 0, 0, err
	}
	payload := make([]byte, 450) // about an event in its envelope with headers
	msg := func(i int) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.ByteEncoder(payload)}
	}
	syncP, err := sarama.NewSyncProducer(kc.Brokers, kc.ProducerConfig())
	if err != nil {
		return 0, 0, 0, err
	}
	defer syncP.Close()
	n, d := 0, 5*time.Second
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		if _, _, err := syncP.SendMessage(msg(n)); err != nil {
			return 0, 0, 0, err
		}
		if ctx.Err() != nil {
			return 0, 0, 0, ctx.Err()
		}
	}
	syncRate = float64(n) / d.Seconds()

	// produce→consume latency at 100 messages/s
	consumer, err := sarama.NewConsumer(kc.Brokers, kc.ConsumerConfig())
	if err != nil {
		return 0, 0, 0, err
	}
	defer consumer.Close()
	var mu sync.Mutex
	var lat []float64
	for p := range int32(events.DefaultPartitions) {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, 0, 0, err
		}
		defer pc.AsyncClose()
		go func() {
			for m := range pc.Messages() {
				var sent int64
				if len(m.Value) >= 8 {
					for _, b := range m.Value[:8] {
						sent = sent<<8 | int64(b)
					}
				}
				mu.Lock()
				lat = append(lat, float64(time.Now().UnixNano()-sent)/1e6)
				mu.Unlock()
			}
		}()
	}
	if err := sleep(ctx, time.Second); err != nil {
		return 0, 0, 0, err
	}
	for i := range 500 {
		v := make([]byte, 450)
		now := time.Now().UnixNano()
		for b := 7; b >= 0; b-- {
			v[b] = byte(now)
			now >>= 8
		}
		if _, _, err := syncP.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.ByteEncoder(v)}); err != nil {
			return 0, 0, 0, err
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return 0, 0, 0, err
		}
	}
	if err := sleep(ctx, time.Second); err != nil {
		return 0, 0, 0, err
	}
	mu.Lock()
	p99ms = percentile(lat, 0.99)
	mu.Unlock()

	cfg := kc.ProducerConfig()
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	asyncP, err := sarama.NewAsyncProducer(kc.Brokers, cfg)
	if err != nil {
		return 0, 0, 0, err
	}
	var acked, refused atomic.Int64
	var drained sync.WaitGroup
	drained.Add(2)
	go func() {
		defer drained.Done()
		for range asyncP.Successes() {
			acked.Add(1)
		}
	}()
	go func() {
		defer drained.Done()
		for range asyncP.Errors() {
			refused.Add(1)
		}
	}()
	// closeAsync flushes what is still queued while Kafka is up (an AsyncClose
	// left it sending into the servers' shutdown at the end of the run) and says
	// once how many messages were refused.
	closeAsync := func() {
		asyncP.AsyncClose()
		drained.Wait()
		if n := refused.Load(); n > 0 {
			say("baseline: %d async produce(s) refused", n)
		}
	}
	startAcked, t0 := acked.Load(), time.Now()
	for i := 0; time.Since(t0) < d; i++ {
		select {
		case asyncP.Input() <- msg(i):
		case <-ctx.Done():
			closeAsync()
			return 0, 0, 0, ctx.Err()
		}
	}
	asyncRate = float64(acked.Load()-startAcked) / time.Since(t0).Seconds()
	closeAsync()
	return round(syncRate, 0), round(asyncRate, 0), round(p99ms, 1), nil
}
