// The consumer phase: the consumer stack's overhead over a bare handler.

package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// consumerTimeout bounds one BenchmarkConsumer run, given to it as -bench.timeout: 3,000
// events take a few seconds here, 4 minutes leaves room for a much slower or
// busier machine.
const consumerTimeout = 4 * time.Minute

func (b *bench) consumer(ctx context.Context, r *Report) error {
	say("consumer stack vs bare loop, %d alternating runs per mode", *consumerRuns)
	const n = 3000
	// BenchmarkConsumer lives next to the code it measures, in the payment
	// service's test files: build that package's test binary.
	bin := filepath.Join(outDir, "bin", "payment-service.test")
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, "./services/payment/internal/service")
	build.Dir = harness.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the consumer benchmark: %w\n%s", err, out)
	}
	rates := map[string][]float64{}
	c := Consumer{Events: n}
	for i := range 2 * *consumerRuns {
		mode := []string{"bare", "stack"}[i%2] // alternating: a drift of the machine hits both
		rate, err := consumerRun(ctx, bin, b.kafka, mode, n)
		if err != nil {
			return fmt.Errorf("run %d (%s): %w", i+1, mode, err)
		}
		rates[mode] = append(rates[mode], rate)
		c.Runs = append(c.Runs, ConsumerRun{Mode: mode, Rate: round(rate, 0)})
		say("  run %d, %s: %.0f events/s", i+1, mode, rate)
	}
	c.StackRate, c.BareRate = round(median(rates["stack"]), 0), round(median(rates["bare"]), 0)
	r.Consumer = c
	return nil
}

// consumerRun preloads n OrderPlaced events into a fresh topic (exactly once,
// see preload) and runs BenchmarkConsumer (bin) in mode on them, with a fresh
// database; it returns the events/s the benchmark reports.
func consumerRun(ctx context.Context, bin string, kc kafka.Config, mode string, n int) (float64, error) {
	msgs := make([]*message.Message, 0, n)
	for i := range n {
		m, err := events.Encode(events.Event{ID: watermill.NewUUID(), OrderID: watermill.NewUUID(), OrderVersion: 1,
			OccurredAt: time.Now(), Payload: events.OrderPlaced{CustomerID: customers[i%len(customers)], Amount: events.Money{MinorUnits: 100, Currency: "EUR"}}})
		if err != nil {
			return 0, err
		}
		msgs = append(msgs, m)
	}
	topic, err := preload(ctx, kc, "bench-consumer-"+mode, msgs)
	if err != nil {
		return 0, err
	}
	defer deleteTopic(kc, topic)
	dbName := "bench_consumer_" + mode
	db, err := freshDB(infra.PaymentDBAddr(), dbName)
	if err != nil {
		return 0, err
	}
	db.Close()
	cmd := exec.CommandContext(ctx, bin, "-test.run", "^$", "-test.bench", "^BenchmarkConsumer$", "-test.benchtime", "1x",
		"-test.timeout", (consumerTimeout + time.Minute).String(),
		"-bench.mode", mode, "-bench.brokers", infra.KafkaAddr(),
		"-bench.dsn", testenv.DSN(infra.PaymentDBAddr(), dbName), "-bench.topic", topic, "-bench.n", fmt.Sprint(n),
		"-bench.timeout", consumerTimeout.String())
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("consumer benchmark %s: %w: %s", mode, err, strings.TrimSpace(string(out)))
	}
	return benchMetric(out, "BenchmarkConsumer", "events/s")
}

// benchMetric returns the value of metric unit in the result line of benchmark
// name in out (a Go test binary's benchmark output, e.g. "BenchmarkConsumer-2
// 1  3402119 ns/op  904.0 events/s"). It fails if there is no such line or value.
func benchMetric(out []byte, name, unit string) (float64, error) {
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || (f[0] != name && !strings.HasPrefix(f[0], name+"-")) {
			continue
		}
		for i := 1; i < len(f); i++ {
			if f[i] == unit {
				return strconv.ParseFloat(f[i-1], 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s result with %s in its output: %q", name, unit, out)
}
