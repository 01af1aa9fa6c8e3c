// Command consumer-poison shows the consumer stack with the poison queue and
// a replay (docs/patterns/05-consumer-stack.md, 08-poison-queue-and-replay.md):
// a message that can never succeed is poisoned at once, one that keeps failing
// after its retries; the partition moves on; once the bug is fixed, a replay
// sends the message back to this consumer group alone, and the inbox absorbs a
// second replay.
//
//	go run ./examples/consumer-poison
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/examples/internal/exampleenv"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/consumer/delayed"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/inbox"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "consumer-poison:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	env, err := exampleenv.New(ctx, "consumer_poison")
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
	// The consumers need the inbox and the delayed path; the poison tool
	// records its replays.
	if err := sqldb.Migrate(ctx, env.DB, slog.New(slog.DiscardHandler), inbox.Migrations, delayed.Migrations, poison.Migrations); err != nil {
		return err
	}
	if _, err := env.DB.ExecContext(ctx, "CREATE TABLE effects (order_id VARCHAR(64) NOT NULL)"); err != nil {
		return err
	}

	poisonOut := env.Kafka.NewPoisonPublisher(watermill.NopLogger{})
	defer poisonOut.Close()
	var duplicates atomic.Int32
	cs, err := consumer.NewConsumers(consumer.Config{
		ConsumerGroup: env.Group("payments"), PoisonTopic: poisonTopic, Kafka: env.Kafka, DB: env.DB, Poison: poisonOut,
		Retry:   consumer.RetryConfig{MaxRetries: 2, InitialInterval: 50 * time.Millisecond, MaxInterval: 100 * time.Millisecond},
		Delayed: delayed.Config{PollInterval: 100 * time.Millisecond},
		Hooks:   consumer.Hooks{Duplicate: func() { duplicates.Add(1) }},
	})
	if err != nil {
		return err
	}
	var bugFixed atomic.Bool
	cs.Handle("payments.order-events", topic, func(msg *message.Message) error {
		order := string(msg.Payload)
		switch {
		case order == "{not an order":
			return failure.PermanentCode(failure.ReasonInvalidEvent, errors.New("the payload does not decode"))
		case order == "order-2" && !bugFixed.Load():
			return errors.New("a bug: the handler fails on order-2") // retried, then given up on
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
	for _, body := range []string{"order-1", "{not an order", "order-2", "order-3"} {
		m := message.NewMessage(watermill.NewUUID(), []byte(body))
		m.Metadata.Set(kafka.MetadataKey, body)
		if err := pub.Publish(topic, m); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "published order-1, a message that does not decode, order-2 (the handler has a bug for it), order-3")

	tool := poison.New(env.Kafka, poisonTopic, env.DB)
	defer tool.Close()
	var page poison.Page
	if err := exampleenv.WaitFor(ctx, func() (bool, error) {
		page, err = tool.List(ctx, poison.Query{Order: poison.OldestFirst})
		return len(page.Entries) == 2 && count(ctx, env.DB, "order-3") == 1, err
	}); err != nil {
		return fmt.Errorf("waiting for two poisoned messages and order-3: %w", err)
	}
	fmt.Fprintf(out, "the partition moved on: order-1 handled %d time(s), order-3 %d time(s)\n", count(ctx, env.DB, "order-1"), count(ctx, env.DB, "order-3"))
	for _, e := range page.Entries {
		fmt.Fprintf(out, "poisoned: offset %d, reason_code %s, error %q, payload %q\n", e.Offset, e.ReasonCode, e.Error, e.Payload)
	}

	bugFixed.Store(true)
	replay := page.Entries[1]
	if _, err := tool.Replay(ctx, replay.Offset); err != nil {
		return err
	}
	fmt.Fprintf(out, "bug fixed; replayed offset %d to consumer group %s, handler %s only\n", replay.Offset, replay.Group, replay.Handler)
	if err := exampleenv.WaitFor(ctx, func() (bool, error) { return count(ctx, env.DB, "order-2") == 1, nil }); err != nil {
		return fmt.Errorf("waiting for the replay of order-2: %w", err)
	}
	fmt.Fprintln(out, "order-2 handled after the replay")
	if _, err := tool.Replay(ctx, replay.Offset); err != nil {
		return err
	}
	if err := exampleenv.WaitFor(ctx, func() (bool, error) { return duplicates.Load() == 1, nil }); err != nil {
		return fmt.Errorf("waiting for the inbox to absorb the second replay: %w", err)
	}
	fmt.Fprintf(out, "replayed again: the inbox absorbed it; effects: order-1=%d order-2=%d order-3=%d\n",
		count(ctx, env.DB, "order-1"), count(ctx, env.DB, "order-2"), count(ctx, env.DB, "order-3"))
	return nil
}

// count is how many effects order had.
func count(ctx context.Context, db *sql.DB, order string) int {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM effects WHERE order_id = ?", order).Scan(&n); err != nil {
		return -1
	}
	return n
}
