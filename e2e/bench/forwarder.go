package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/caarlos0/env/v11"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/outbox/parking"
	"github.com/onceflow/onceflow/pkg/servicedb"
	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

const (
	// forwarderEvents is how many events the forwarder phase preloads.
	forwarderEvents = 20_000
	// forwarderBatch is how many of them one preload transaction writes.
	forwarderBatch = 500
	// forwarderLimit bounds the wait for an empty outbox (alone, the single
	// relay has done ~2,300/s here and the batch relay ~13,000/s).
	forwarderLimit = 4 * time.Minute
)

// forwarder measures the services' forwarder alone: forwarderEvents
// order-shaped events written through outbox.Outbox.Publish into a fresh
// database on the order MariaDB, with nothing consuming their topic and no
// saga running; then the forwarder, built as the services build it (the order
// service's messaging configuration, with -service-env: orderMessagingConfig;
// outbox.NewForwarder over kafka.Config.NewPublisher), runs in this process
// until the outbox is empty.
func (b *bench) forwarder(ctx context.Context, r *Report) error {
	say("forwarder alone: %d events preloaded", forwarderEvents)
	cfg, kc, db, err := b.outboxBench(ctx, "bench_forwarder")
	if err != nil {
		return err
	}
	defer db.Close()
	topic := "bench-forwarder-" + strings.ToLower(watermill.NewShortUUID()[:6])
	if err := kc.EnsureTopics(ctx, []kafka.TopicSpec{{Name: topic, Partitions: events.DefaultPartitions}}); err != nil {
		return err
	}
	defer deleteTopic(kc, topic)
	if err := waitLeaders(ctx, kc, topic, events.DefaultPartitions); err != nil {
		return err
	}
	ob := outbox.New()
	if err := fillOutbox(ctx, db, ob, topic, forwarderEvents); err != nil {
		return fmt.Errorf("preloading the outbox: %w", err)
	}
	rows, err := outbox.Pending(ctx, db)
	if err != nil {
		return err
	}
	if rows != forwarderEvents {
		return fmt.Errorf("outbox holds %d rows after the preload, want %d", rows, forwarderEvents)
	}

	wlog := watermill.NewSlogLogger(slog.New(slog.DiscardHandler))
	out := kc.NewPublisher(wlog)
	defer out.Close()
	parked, err := parking.New(parking.Config{DB: db, Outbox: ob, Logger: wlog})
	if err != nil {
		return err
	}
	fc := cfg.Outbox
	fc.DB, fc.Publisher, fc.Logger, fc.Outbox, fc.Breaker, fc.Parking = db, out, wlog, ob, cfg.Breaker, parked.Publisher
	fwd, err := outbox.NewForwarder(fc)
	if err != nil {
		return err
	}
	runErr := make(chan error, 1)
	t0 := time.Now()
	go func() { runErr <- fwd.Run(context.Background()) }()
	defer func() {
		_ = fwd.Close()
		fwd.Abandon()
		<-runErr
	}()
	var first time.Duration
	for rows > 0 {
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("outbox not empty: %d rows left: %w", rows, err)
		}
		select {
		case err := <-runErr:
			// put back for the deferred stop
			runErr <- err
			return fmt.Errorf("forwarder stopped with %d rows left: %v", rows, err) //nolint:errorlint // err is nil when the forwarder stopped cleanly
		default:
		}
		if rows, err = outbox.Pending(ctx, db); err != nil {
			return err
		}
		if first == 0 && rows < forwarderEvents {
			first = time.Since(t0)
		}
		if time.Since(t0) > forwarderLimit {
			return fmt.Errorf("outbox not empty after %s: %d rows left", forwarderLimit, rows)
		}
	}
	el := time.Since(t0)
	// an empty outbox must mean every event reached the topic
	if n, err := testenv.MessageCount(kc, topic); err != nil || n < forwarderEvents {
		return fmt.Errorf("outbox empty but topic %s holds %d of %d events (%v)", topic, n, forwarderEvents, err) //nolint:errorlint // err is nil when the count is merely short
	}
	r.Forwarder = Forwarder{Events: forwarderEvents, Seconds: round(el.Seconds(), 2),
		Rate: round(forwarderEvents/el.Seconds(), 0), FirstSec: round(first.Seconds(), 2)}
	say("  %d events in %.2f s (first forwarded after %.2f s): %.0f/s", forwarderEvents, el.Seconds(), first.Seconds(), r.Forwarder.Rate)
	return nil
}

// outboxBench returns what a phase measuring a forwarder in this process
// starts from: the order service's messaging configuration
// (orderMessagingConfig), its Kafka settings for the bench's Kafka, and a pool
// like the services' (READ COMMITTED sessions, no SET per poll) on a fresh
// database of the order MariaDB named name, migrated with the services' sets
// and extra.
func (b *bench) outboxBench(ctx context.Context, name string, extra ...sqldb.Migrations) (servicemain.Messaging, kafka.Config, *sql.DB, error) {
	return outboxBenchOn(ctx, infra, name, extra...)
}

// outboxBenchOn is outboxBench on the servers on.
func outboxBenchOn(ctx context.Context, on *harness.Infra, name string, extra ...sqldb.Migrations) (servicemain.Messaging, kafka.Config, *sql.DB, error) {
	cfg, err := orderMessagingConfig(extraEnv())
	if err != nil {
		return cfg, kafka.Config{}, nil, err
	}
	kc := cfg.Kafka
	kc.Brokers, kc.ClientID = on.KafkaBrokers(), strings.ReplaceAll(name, "_", "-")
	fresh, err := freshDB(on.OrderDBAddr(), name)
	if err != nil {
		return cfg, kc, nil, err
	}
	fresh.Close()
	db, err := sqldb.Open(ctx, testenv.DSN(on.OrderDBAddr(), name), 32)
	if err != nil {
		return cfg, kc, nil, err
	}
	if err := sqldb.Migrate(ctx, db, slog.New(slog.DiscardHandler), append(servicedb.Migrations(nil), extra...)...); err != nil {
		db.Close()
		return cfg, kc, nil, err
	}
	return cfg, kc, db, nil
}

// orderMessagingConfig is the order service's messaging configuration: the
// defaults, with the ORDER_* settings of -service-env (e.g.
// ORDER_OUTBOX_BATCH_SIZE=10) read as the service reads them. It fails on a
// setting the service would refuse to parse.
func orderMessagingConfig(settings []string) (servicemain.Messaging, error) {
	vars := map[string]string{}
	for _, kv := range settings {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	var cfg servicemain.Messaging
	if err := env.ParseWithOptions(&cfg, env.Options{Prefix: "ORDER_", Environment: vars}); err != nil {
		return servicemain.Messaging{}, fmt.Errorf("-service-env: %w", err)
	}
	return cfg.Defaults(), nil
}

// fillOutbox writes n OrderPlaced events for topic through outbox, forwarderBatch
// per transaction.
func fillOutbox(ctx context.Context, db *sql.DB, ob *outbox.Outbox, topic string, n int) error {
	for done := 0; done < n; {
		k := min(forwarderBatch, n-done)
		err := sqldb.InTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error {
			for i := range k {
				if err := events.Write(ctx, ob, tx, topic, events.Event{ID: watermill.NewUUID(), OrderID: watermill.NewUUID(),
					OrderVersion: 1, OccurredAt: time.Now().UTC(), Payload: events.OrderPlaced{
						CustomerID: customers[(done+i)%len(customers)], Amount: events.Money{MinorUnits: 100, Currency: "EUR"}}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		done += k
	}
	return nil
}
