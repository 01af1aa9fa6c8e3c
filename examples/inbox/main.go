// Command inbox shows the idempotent consumer (docs/patterns/04-inbox.md): the
// inbox records a message's id in the same transaction as the handler's
// effect, so a message delivered again, or twice at once, charges once, and a
// failed attempt leaves nothing behind. It needs no Kafka: any Watermill
// subscriber could deliver these messages; here the program delivers them.
//
//	go run ./examples/inbox
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/examples/internal/exampleenv"
	"github.com/onceflow/onceflow/pkg/inbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "inbox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	env, err := exampleenv.New(ctx, "inbox")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Close()) }()
	if err := sqldb.Migrate(ctx, env.DB, slog.New(slog.DiscardHandler), inbox.Migrations); err != nil {
		return err
	}
	if _, err := env.DB.ExecContext(ctx, "CREATE TABLE accounts (id VARCHAR(64) PRIMARY KEY, balance_cents BIGINT NOT NULL)"); err != nil {
		return err
	}
	if _, err := env.DB.ExecContext(ctx, "INSERT INTO accounts VALUES ('c-1', 0)"); err != nil {
		return err
	}

	ib, err := inbox.New(inbox.Config{DB: env.DB, ConsumerGroup: "payment-service"})
	if err != nil {
		return err
	}
	var runs atomic.Int32
	crashAfterCharge := atomic.Bool{}
	// charge is the handler: it joins the inbox's transaction from the
	// message's context and charges 12.50 EUR.
	charge := ib.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		runs.Add(1)
		tx, ok := sqldb.TxFromContext(msg.Context())
		if !ok {
			return nil, errors.New("no transaction in the context")
		}
		if _, err := tx.ExecContext(msg.Context(), "UPDATE accounts SET balance_cents = balance_cents + 1250 WHERE id = 'c-1'"); err != nil {
			return nil, err
		}
		if crashAfterCharge.Swap(false) {
			return nil, errors.New("the handler failed after the charge")
		}
		return nil, nil
	})
	deliver := func(id string) error {
		msg := message.NewMessage(id, []byte(`{"order_id":"`+id+`","amount_cents":1250}`))
		msg.SetContext(ctx)
		_, err := charge(msg)
		return err
	}
	balance := func() int64 {
		var b int64
		if err := env.DB.QueryRowContext(ctx, "SELECT balance_cents FROM accounts WHERE id = 'c-1'").Scan(&b); err != nil {
			return -1
		}
		return b
	}

	crashAfterCharge.Store(true)
	err = deliver("payment-order-1")
	fmt.Fprintf(out, "delivery 1 of payment-order-1: failed (%v); charge and inbox record rolled back together: balance %d\n", err, balance())
	if err := deliver("payment-order-1"); err != nil {
		return err
	}
	fmt.Fprintf(out, "delivery 2 of payment-order-1: applied: balance %d\n", balance())
	if err := deliver("payment-order-1"); err != nil {
		return err
	}
	fmt.Fprintf(out, "delivery 3 of payment-order-1: duplicate, acknowledged without running the handler: balance %d\n", balance())

	// Two deliveries of one message at once (two replicas during a
	// rebalance): they serialise on the inbox's unique key.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = deliver("payment-order-2") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(out, "two deliveries of payment-order-2 at once: balance %d\n", balance())
	fmt.Fprintf(out, "5 deliveries of 2 messages: the handler ran %d times (one rolled back); final balance %d cents\n",
		runs.Load(), balance())
	return nil
}
