// Command requeue shows the requeue failure strategy and the delayed path it
// uses (docs/patterns/06-failure-strategies.md): a message whose in-place
// retries are spent waits in the consumer's own database and comes back after
// a growing delay, while the partition moves on; a bug that heals meanwhile
// costs nothing, and a message that keeps failing is poisoned after a bound.
//
//	go run ./examples/requeue
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/examples/internal/exampleenv"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/consumer/delayed"
	"github.com/onceflow/onceflow/pkg/consumer/requeue"
	"github.com/onceflow/onceflow/pkg/inbox"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "requeue:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	env, err := exampleenv.New(ctx, "requeue")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Close()) }()
	topic, err := env.Topic(ctx, "orders", 1)
	if err != nil {
		return err
	}
	poisonTopic, err := env.Topic(ctx, "poison", 1)
	if err != nil {
		return err
	}
	if err := sqldb.Migrate(ctx, env.DB, slog.New(slog.DiscardHandler), inbox.Migrations, delayed.Migrations, poison.Migrations); err != nil {
		return err
	}
	if _, err := env.DB.ExecContext(ctx, "CREATE TABLE effects (seq INT AUTO_INCREMENT PRIMARY KEY, order_id VARCHAR(64) NOT NULL)"); err != nil {
		return err
	}
	applied := func() string { return exampleenv.Column(ctx, env.DB, "SELECT order_id FROM effects ORDER BY seq") }

	// Three requeues at most, after 1 s, then 2 s, then 2 s (the cap).
	strategy, err := requeue.New(requeue.Config{MaxRequeues: 3, InitialDelay: time.Second, MaxDelay: 2 * time.Second})
	if err != nil {
		return err
	}
	poisonOut := env.Kafka.NewPoisonPublisher(watermill.NopLogger{})
	defer poisonOut.Close()
	cs, err := consumer.NewConsumers(consumer.Config{
		ConsumerGroup: env.Group("payments"), PoisonTopic: poisonTopic, Kafka: env.Kafka, DB: env.DB, Poison: poisonOut,
		Retry:    consumer.RetryConfig{MaxRetries: 1, InitialInterval: 50 * time.Millisecond, MaxInterval: 50 * time.Millisecond},
		Delayed:  delayed.Config{PollInterval: 100 * time.Millisecond},
		Strategy: strategy,
	})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	attempts := map[string]int{}
	var firstFailure time.Time
	cs.Handle("payments.order-events", topic, func(msg *message.Message) error {
		order := string(msg.Payload)
		mu.Lock()
		attempts[order]++
		if order == "order-2" && firstFailure.IsZero() {
			firstFailure = time.Now()
		}
		healed := !firstFailure.IsZero() && time.Since(firstFailure) > 2*time.Second
		mu.Unlock()
		switch {
		case order == "order-2" && !healed:
			return errors.New("the fraud check is down for order-2") // heals after 2 s
		case order == "order-4":
			return errors.New("the fraud check never answers for order-4")
		}
		tx, _ := sqldb.TxFromContext(msg.Context()) // the inbox's transaction
		_, err := tx.ExecContext(msg.Context(), "INSERT INTO effects (order_id) VALUES (?)", order)
		return err
	})
	consumed := make(chan error, 1)
	go func() { consumed <- cs.Run(ctx) }()
	defer func() { cs.Drain(time.Now().Add(5 * time.Second)); err = errors.Join(err, cs.Close(), <-consumed) }()

	pub := env.Kafka.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	for _, order := range []string{"order-1", "order-2", "order-3", "order-4"} {
		m := message.NewMessage(watermill.NewUUID(), []byte(order))
		m.Metadata.Set(kafka.MetadataKey, order)
		if err := pub.Publish(topic, m); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "published order-1, order-2 (fails for 2 s), order-3, order-4 (fails for good)")

	tool := poison.New(env.Kafka, poisonTopic, env.DB)
	defer tool.Close()
	var page poison.Page
	if err := exampleenv.WaitFor(ctx, func() (bool, error) {
		page, err = tool.List(ctx, poison.Query{})
		return len(page.Entries) == 1 && strings.Count(applied(), "order") == 3, err
	}); err != nil {
		return fmt.Errorf("waiting for three orders applied and one poisoned: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(out, "applied in order: %s (the partition did not wait for order-2)\n", applied())
	fmt.Fprintf(out, "order-2: %d attempts: 2 from Kafka, the rest from the delayed path until the bug healed\n", attempts["order-2"])
	e := page.Entries[0]
	fmt.Fprintf(out, "order-4: %d attempts (2 per delivery: from Kafka, then 3 requeues), then poisoned: payload %q, reason_code %s\n",
		attempts["order-4"], e.Payload, e.ReasonCode)
	return nil
}
