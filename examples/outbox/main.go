// Command outbox shows the transactional outbox and its relay
// (docs/patterns/01-transactional-outbox.md, 02-relay.md): an order row and
// its event commit in one transaction or not at all, and the forwarder takes
// the committed events to Kafka, deleting each row once Kafka acknowledged it.
//
//	go run ./examples/outbox
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/examples/internal/exampleenv"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "outbox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	env, err := exampleenv.New(ctx, "outbox")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Close()) }()
	topic, err := env.Topic(ctx, "orders", 1) // one partition: Kafka keeps the order of arrival
	if err != nil {
		return err
	}
	// The outbox table (its own migration), and this program's own table.
	if err := sqldb.Migrate(ctx, env.DB, slog.New(slog.DiscardHandler), outbox.Migrations); err != nil {
		return err
	}
	if _, err := env.DB.ExecContext(ctx, "CREATE TABLE orders (id VARCHAR(64) PRIMARY KEY, amount_cents BIGINT NOT NULL)"); err != nil {
		return err
	}

	ob := outbox.New()
	// place writes the order and its OrderPlaced event in one transaction;
	// failAfterWrite makes the transaction fail after both were written.
	place := func(id string, failAfterWrite bool) error {
		return sqldb.InTx(ctx, env.DB, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO orders (id, amount_cents) VALUES (?, 1250)", id); err != nil {
				return err
			}
			event := message.NewMessage(watermill.NewUUID(), []byte(id))
			event.Metadata.Set(kafka.MetadataKey, id) // the Kafka key: one order, one partition
			if err := ob.Publish(ctx, tx, topic, event); err != nil {
				return err
			}
			if failAfterWrite {
				return errors.New("the request failed after the order and its event were written")
			}
			return nil
		})
	}
	if err := place("order-1", false); err != nil {
		return err
	}
	fmt.Fprintln(out, "order-1: committed: the order row and its event, in one transaction")
	if err := place("order-2", true); err != nil {
		fmt.Fprintf(out, "order-2: rolled back (%v): neither the row nor the event exists\n", err)
	}
	pending, err := outbox.Pending(ctx, env.DB)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "outbox before the relay runs: %d row(s) waiting; Kafka has nothing yet\n", pending)

	// The relay: Watermill's forwarder over the outbox table, publishing with
	// acks=all and an idempotent producer, one batch produce per poll.
	pub := env.Kafka.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	fwd, err := outbox.NewForwarder(outbox.Config{DB: env.DB, Publisher: pub, Outbox: ob})
	if err != nil {
		return err
	}
	relayDone := make(chan error, 1)
	go func() { relayDone <- fwd.Run(ctx) }()
	defer func() { err = errors.Join(err, fwd.Close(), <-relayDone) }()

	// Committed while the relay runs: the commit wakes the forwarder.
	if err := place("order-3", false); err != nil {
		return err
	}
	fmt.Fprintln(out, "order-3: committed while the relay runs: its commit wakes the forwarder")

	got, err := env.ReadUntil(ctx, topic, "order-3")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "kafka received, in order: %s\n", strings.Join(got, ", "))
	for pending > 0 {
		if pending, err = outbox.Pending(ctx, env.DB); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond) // the deletes commit just after Kafka's ack
	}
	var orders int
	if err := env.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders").Scan(&orders); err != nil {
		return err
	}
	fmt.Fprintf(out, "outbox after the relay: %d row(s): each deleted once Kafka acknowledged it\n", pending)
	fmt.Fprintf(out, "orders in the database: %d; events in Kafka: %d\n", orders, len(got))
	return nil
}
