// The drain phase: how fast the forwarder empties a preloaded outbox.

package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
)

// drain preloads the order outbox with Kafka stopped, starts Kafka and times
// how long the forwarder takes to empty it. If it fails half-way, Kafka may be
// left stopped: the next phase starts it (infra.Up).
func drain(ctx context.Context, s *harness.Stack, r *Report) error {
	say("forwarder drain")
	const n = 3000
	if err := infra.Kill(harness.Kafka); err != nil {
		return err
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	jobs := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if status, _, err := s.PlaceOrder(ctx, 0, customers[i%len(customers)], 100, "EUR"); err != nil || status != 201 {
					failed.Add(1)
				}
			}
		}()
	}
send:
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break send
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	var rows int
	if err := s.OrderDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM watermill_outbox").Scan(&rows); err != nil {
		return err
	}
	if err := infra.Start(harness.Kafka); err != nil {
		return err
	}
	t0 := time.Now()
	var firstOut time.Duration // until the forwarder's first delete: reconnecting to Kafka
	for start := rows; rows > 0; {
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("outbox not drained: %d rows left: %w", rows, err)
		}
		if err := s.OrderDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM watermill_outbox").Scan(&rows); err != nil {
			return err
		}
		if firstOut == 0 && rows < start {
			firstOut = time.Since(t0)
		}
		if time.Since(t0) > 3*time.Minute {
			return fmt.Errorf("outbox not drained after 3 minutes: %d rows left", rows)
		}
	}
	el := time.Since(t0)
	r.Drain = Drain{Events: n - int(failed.Load()), Seconds: round(el.Seconds(), 2), ReconnectSec: round(firstOut.Seconds(), 2)}
	r.Drain.Rate = round(float64(r.Drain.Events)/el.Seconds(), 0)
	r.Drain.SteadyRate = round(float64(r.Drain.Events)/(el-firstOut).Seconds(), 0)
	say("  %d events in %.1f s (first forwarded after %.1f s): %.0f/s overall, %.0f/s once connected",
		r.Drain.Events, el.Seconds(), firstOut.Seconds(), r.Drain.Rate, r.Drain.SteadyRate)
	waitDrained(ctx, s, 120*time.Second)
	return ctx.Err()
}
