// Command parkkey shows the park-key failure strategy
// (docs/patterns/07-park-key.md): a message the consumer gives up on is
// parked as the head of its key, the key's later messages park behind it
// without running the handler while other keys flow, and a replay releases
// the key in order.
//
//	go run ./examples/parkkey
package main

import (
	"context"
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
	"github.com/onceflow/onceflow/pkg/consumer/parkkey"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/inbox"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "parkkey:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	env, err := exampleenv.New(ctx, "parkkey")
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
	if err := sqldb.Migrate(ctx, env.DB, slog.New(slog.DiscardHandler), inbox.Migrations, delayed.Migrations, parkkey.Migrations); err != nil {
		return err
	}
	if _, err := env.DB.ExecContext(ctx, "CREATE TABLE effects (seq INT AUTO_INCREMENT PRIMARY KEY, event VARCHAR(64) NOT NULL)"); err != nil {
		return err
	}
	applied := func() string { return exampleenv.Column(ctx, env.DB, "SELECT event FROM effects ORDER BY seq") }

	parkKey, err := parkkey.New(parkkey.Config{PollInterval: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	poisonOut := env.Kafka.NewPoisonPublisher(watermill.NopLogger{})
	defer poisonOut.Close()
	cs, err := consumer.NewConsumers(consumer.Config{
		ConsumerGroup: env.Group("payments"), PoisonTopic: poisonTopic, Kafka: env.Kafka, DB: env.DB, Poison: poisonOut,
		Retry:    consumer.RetryConfig{MaxRetries: 1, InitialInterval: 50 * time.Millisecond, MaxInterval: 50 * time.Millisecond},
		Strategy: parkKey, // every consumer parks what it gives up on
	})
	if err != nil {
		return err
	}
	var fixed atomic.Bool
	cs.Handle("payments.order-events", topic, func(msg *message.Message) error {
		event := string(msg.Payload)
		if event == "order-a placed" && !fixed.Load() {
			return failure.Permanent(errors.New("the account of order-a is locked"))
		}
		tx, _ := sqldb.TxFromContext(msg.Context()) // the inbox's transaction
		_, err := tx.ExecContext(msg.Context(), "INSERT INTO effects (event) VALUES (?)", event)
		return err
	})
	consumed := make(chan error, 1)
	go func() { consumed <- cs.Run(ctx) }() // Run also runs park-key's release poller
	defer func() { cs.Drain(time.Now().Add(5 * time.Second)); err = errors.Join(err, cs.Close(), <-consumed) }()

	pub := env.Kafka.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	for _, e := range [][2]string{{"order-a", "order-a placed"}, {"order-a", "order-a paid"}, {"order-b", "order-b placed"}, {"order-a", "order-a cancelled"}} {
		m := message.NewMessage(watermill.NewUUID(), []byte(e[1]))
		m.Metadata.Set(kafka.MetadataKey, e[0]) // the Kafka key: the order
		if err := pub.Publish(topic, m); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "published: order-a placed (fails for good), order-a paid, order-b placed, order-a cancelled")

	admin := parkkey.Admin{DB: env.DB}
	var key parkkey.ParkedKey
	if err := exampleenv.WaitFor(ctx, func() (bool, error) {
		key, err = admin.Get(ctx, "order-a", "")
		return err == nil && key.Messages == 3, ignoreNotFound(err)
	}); err != nil {
		return fmt.Errorf("waiting for order-a's three messages to park: %w", err)
	}
	fmt.Fprintf(out, "while order-a is parked, other keys flow: applied so far: %s\n", applied())
	for _, m := range key.Queue {
		fmt.Fprintf(out, "parked on key order-a: %q, reason_code %s\n", m.Payload, m.ReasonCode)
	}

	fixed.Store(true)
	if _, err := admin.Replay(ctx, "order-a", ""); err != nil {
		return err
	}
	fmt.Fprintln(out, "the account is unlocked; replaying key order-a")
	if err := exampleenv.WaitFor(ctx, func() (bool, error) {
		_, err := admin.Get(ctx, "order-a", "")
		return errors.Is(err, parkkey.ErrKeyNotParked), ignoreNotFound(err)
	}); err != nil {
		return fmt.Errorf("waiting for order-a's release: %w", err)
	}
	fmt.Fprintf(out, "released; applied in order: %s\n", applied())
	return nil
}

func ignoreNotFound(err error) error {
	if errors.Is(err, parkkey.ErrKeyNotParked) {
		return nil
	}
	return err
}
