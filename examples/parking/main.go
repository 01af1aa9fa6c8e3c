// Command parking shows how the relay parks an outbox row Kafka refuses for
// good (docs/patterns/03-parking.md): the row moves to outbox_parked with
// Kafka's reason, the later rows of its key park behind it, other keys flow,
// and a replay, once the cause is fixed, sends the key's rows in order.
//
//	go run ./examples/parking
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
	"github.com/onceflow/onceflow/pkg/outbox/parking"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "parking:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	env, err := exampleenv.New(ctx, "parking")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Close()) }()
	// A topic that takes messages of at most 1 KiB: Kafka refuses a larger
	// one, however often it is sent.
	small := map[string]string{"max.message.bytes": "1024"}
	topic, err := env.TopicWithConfig(ctx, "orders", 1, small)
	if err != nil {
		return err
	}
	if err := sqldb.Migrate(ctx, env.DB, slog.New(slog.DiscardHandler), outbox.Migrations, parking.Migrations); err != nil {
		return err
	}

	ob := outbox.New()
	write := func(key, event string) error {
		return sqldb.InTx(ctx, env.DB, func(ctx context.Context, tx *sql.Tx) error {
			m := message.NewMessage(watermill.NewUUID(), []byte(event))
			m.Metadata.Set(kafka.MetadataKey, key)
			return ob.Publish(ctx, tx, topic, m)
		})
	}
	large := "order-x placed " + strings.Repeat(".", 2048)
	for _, e := range [][2]string{{"order-x", large}, {"order-x", "order-x cancelled"}, {"order-y", "order-y placed"}} {
		if err := write(e[0], e[1]); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "outbox: order-x placed (2 KiB, over the topic's 1 KiB), order-x cancelled, order-y placed")

	park, err := parking.New(parking.Config{DB: env.DB, Outbox: ob})
	if err != nil {
		return err
	}
	pub := env.Kafka.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	fwd, err := outbox.NewForwarder(outbox.Config{DB: env.DB, Publisher: pub, Outbox: ob, Parking: park.Publisher})
	if err != nil {
		return err
	}
	relayDone := make(chan error, 1)
	go func() { relayDone <- fwd.Run(ctx) }()
	defer func() { err = errors.Join(err, fwd.Close(), <-relayDone) }()

	got, err := env.ReadUntil(ctx, topic, "order-y placed")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "kafka received: %s (order-x does not hold the outbox)\n", strings.Join(got, ", "))
	var rows []parking.Row
	if err := exampleenv.WaitFor(ctx, func() (bool, error) {
		rows, err = park.List(ctx)
		return len(rows) == 2, err
	}); err != nil {
		return fmt.Errorf("waiting for order-x's two rows to park: %w", err)
	}
	for _, r := range rows {
		fmt.Fprintf(out, "parked: row %d, key %s, head %t, reason %s\n", r.ID, r.Key, r.Head, r.Cause)
	}

	// The fix: the topic takes 1 MiB. Then the operator replays the key's head.
	if err := env.Kafka.ApplyTopicConfigs([]kafka.TopicSpec{{Name: topic, Config: map[string]string{"max.message.bytes": "1048576"}}}); err != nil {
		return err
	}
	if _, err := park.Replay(ctx, rows[0].ID); err != nil {
		return err
	}
	fmt.Fprintf(out, "topic raised to 1 MiB; replayed row %d\n", rows[0].ID)
	if got, err = env.ReadUntil(ctx, topic, "order-x cancelled"); err != nil {
		return err
	}
	for i, p := range got {
		if len(p) > 20 {
			got[i] = fmt.Sprintf("%s (%d bytes)", p[:14], len(p))
		}
	}
	fmt.Fprintf(out, "kafka received, in order: %s\n", strings.Join(got, ", "))
	if n := strings.Count(strings.Join(got, ","), "order-y placed"); n > 1 {
		// The batch that Kafka partly refused was sent again, one message per
		// produce, to find the row to park: at least once, consumers deduplicate.
		fmt.Fprintf(out, "order-y placed arrived %d times: the refused batch was sent again\n", n)
	}
	if err := exampleenv.WaitFor(ctx, func() (bool, error) {
		n, err := parking.Count(ctx, env.DB)
		return n == 0, err
	}); err != nil {
		return fmt.Errorf("waiting for outbox_parked to empty: %w", err)
	}
	fmt.Fprintln(out, "parked rows left: 0")
	return nil
}
