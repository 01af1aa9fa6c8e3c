// Command bench measures the whole saga (max sustained rate by bisection with
// the CPU-ms per order of each process, latency, forwarder drain, a Kafka
// outage, consumer-stack overhead, the delivery auditor's cost) and the
// forwarder alone, against raw baselines measured in the same run on the same
// servers, judges the goals of issue 15, and writes build/bench/report.json, a
// table on stdout and build/bench/outage-latency.png. `make bench` runs it;
// see docs/benchmarks.md.
//
// Each phase runs under its own deadline. A phase that fails (error, panic,
// deadline) is recorded in the report's "phases" and the goals that depend on
// it are not met; the other phases still run. The report is always written and
// the table printed; then the exit status is 1 if any phase failed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// K is the number of durable MariaDB commits on an order's critical path: the
// order and its OrderPlaced (1), the order forwarder's delete (2), the payment
// consumer's inbox + charge + PaymentCompleted (3), the payment forwarder's delete
// (4), the order consumer's inbox + confirmation (5).
const K = 5

var (
	outDir = filepath.Join(harness.RepoRoot(), "build", "bench")
	infra  = &harness.Infra{
		Dir:         filepath.Join(outDir, "infra"),
		OrderDBPort: 23307, PaymentDBPort: 23308, KafkaPort: 29092, KafkaControllerPort: 29093,
	}
)

var (
	phasesFlag   = flag.String("phases", "baselines,forwarder,saga,latency,profile,drain,audit,stock,outage,consumer,relays,galera", "comma-separated phases to run; the others are reported as skipped")
	stepDur      = flag.Duration("step", 30*time.Second, "duration of one load step of the saga phase's bisection (ADR 0042: at least 30 s for a real run)")
	repeats      = flag.Int("repeats", 3, "searches for the max sustained rate (in the audit phase, per mode); the saga, audit and galera phases report their median")
	consumerRuns = flag.Int("consumer-runs", 5, "runs per mode (bare, stack, alternating) of the consumer phase; it reports the medians")
	maxRate      = flag.Float64("max-rate", 200, "saga rate (orders/s) to assume when the saga phase is not run or fails")
	svcEnv       = flag.String("service-env", "", "comma-separated NAME=value settings for both services, to compare a tuning (e.g. ORDER_OUTBOX_BATCH_SIZE=10)")
	failPhase    = flag.String("fail-phase", "", "make a phase fail at its start, to see how the report shows it: NAME (it returns an error) or NAME:hang (it blocks, ignoring its deadline)")
	deadlines    = flag.String("deadline", "", "comma-separated NAME=DURATION overrides of phase deadlines (e.g. consumer=30s, with -fail-phase consumer:hang)")
)

// grace is how long after its deadline a phase is still waited for (it may be
// restarting Kafka, which takes up to ~30 s) before it is abandoned.
const grace = 45 * time.Second

func main() {
	flag.Parse()
	os.Exit(run())
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// run runs the selected phases, writes report.json and prints the table, and
// only then returns the exit code: 1 if a phase failed or the report could not
// be written, 2 for bad flags.
func run() int {
	start := time.Now()
	b := &bench{kafka: kafka.Config{Brokers: []string{infra.KafkaAddr()}, ClientID: "bench"}.Defaults()}
	ps, err := b.phases()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	r := &Report{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), K: K}
	r.Throughput.MaxSustained = *maxRate
	selected := strings.Split(*phasesFlag, ",")
	ok := runPhases(r, ps, func(name string) bool { return slices.Contains(selected, name) }, grace,
		func(context.Context) error {
			say("starting any server that is not running (%s)", infra.Dir)
			return infra.Up() // starts whatever an earlier phase left stopped
		})
	b.stacks.closeAll()
	r.evaluate()
	if st, _ := r.phase("relays"); st == statusOK {
		if err := writeRelaysTable(r); err != nil {
			fmt.Fprintln(os.Stderr, "bench: the relays table:", err)
			ok = false
		}
	}
	r.TookSec = round(time.Since(start).Seconds(), 0)
	data, _ := json.MarshalIndent(r, "", "  ")
	report := filepath.Join(outDir, "report.json")
	if err := os.WriteFile(report, append(data, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		ok = false
	}
	fmt.Print(r.Table())
	fmt.Printf("\nreport: %s, plot: %s, took %s\n", report, filepath.Join(outDir, "outage-latency.png"), time.Since(start).Round(time.Second))
	say("stopping servers")
	if err := infra.Down(); err != nil {
		say("stopping servers: %v", err)
	}
	if !ok {
		fmt.Fprintln(os.Stderr, "bench: a phase failed (see \"phases\" in the report)")
		return 1
	}
	return 0
}

// bench is what the phases share: Kafka's address, the service binaries (built
// on first use) and the saga stack.
type bench struct {
	kafka  kafka.Config
	stacks stacks

	mu                             sync.Mutex
	orderBin, paymentBin           string
	faultOrderBin, faultPaymentBin string
}

// phases lists the phases in the order they run. Each deadline is several
// times what the phase takes on the 2-core reference machine, so that only a
// hang or a broken server reaches it; the comments give the usual time.
func (b *bench) phases() ([]phase, error) {
	ps := []phase{
		// ~30 s: 8 s of commits, ~17 s of produce baselines; as the first phase it
		// also starts the servers (up to a minute or two on a cold machine).
		{"baselines", 6 * time.Minute, b.baselines},
		// ~1 min: 20,000 events into a fresh outbox (a few seconds), then the
		// services' forwarder alone until it is empty (~15 s at ~1,300/s).
		{"forwarder", 6 * time.Minute, b.forwarder},
		// ~10 min: a stack and its warm-up, then 3 searches of 30 s steps (each
		// followed by up to 60 s of draining): ~7 steps for the first, ~3 for each
		// of the others.
		{"saga", 25 * time.Minute, b.onSagaStack(throughput)},
		// ~1 min: 20 s of load, up to 60 s of draining (and a new stack if the saga
		// phase did not leave one).
		{"latency", 6 * time.Minute, b.onSagaStack(latency)},
		// ~1 min: one step at the max sustained rate with a CPU profile of each
		// service and the databases' statement counters, then draining.
		{"profile", 6 * time.Minute, b.onSagaStack(profileAtMax)},
		// 1–2 min: 3,000 orders with Kafka down, a Kafka restart, up to 3 min until
		// the outbox is empty and 2 min of draining.
		{"drain", 12 * time.Minute, b.onSagaStack(drain)},
		// ~20 min: 3 searches with the delivery auditor on and 3 with it off,
		// alternating, each on a new stack (~30 s) and of ~4 steps (each
		// followed by up to 60 s of draining) from around the saga phase's
		// result. After the phases that share the saga stack, which it closes
		// (as the outage phase does) to have the cores to itself.
		{"audit", 50 * time.Minute, b.audit},
		// ~10 min: the fault build of the services, a new stack of stock
		// Watermill parts, 3 searches of ~4 steps from [a quarter, half] of the
		// saga's rate, then the latency at half its max.
		{"stock", 30 * time.Minute, b.stock},
		// ~4 min: a new stack, 120 s of load around a 60 s outage, up to 120 s of
		// draining.
		{"outage", 12 * time.Minute, b.outage},
		// 2–3 min: building the payment service's test binary, then 5 runs per
		// mode, each a preload (up to 3 attempts) and a BenchmarkConsumer run of
		// at most consumerTimeout (a few seconds here).
		{"consumer", 15 * time.Minute, b.consumer},
		// ~3 min: the raw produce baseline (~17 s), then 3 rounds per relay, each
		// a preload (a few seconds), the drain (~2 s for onceflow's 20,000 events,
		// several for the stock relay's 2,000) and 6 s of latency load.
		{"relays", 15 * time.Minute, b.relays},
		// ~10 min: the Galera clusters' first start (about a minute), then the
		// saga phase's searches and the latency phase on them. Last: it replaces
		// the single database servers on their ports.
		{"galera", 30 * time.Minute, b.galera},
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.name
	}
	for _, name := range strings.Split(*phasesFlag, ",") {
		if !slices.Contains(names, name) {
			return nil, fmt.Errorf("-phases: unknown phase %q (known: %s)", name, strings.Join(names, ","))
		}
	}
	if *repeats < 1 || *consumerRuns < 1 || *stepDur <= 0 {
		return nil, fmt.Errorf("-repeats and -consumer-runs must be at least 1 and -step positive")
	}
	if *deadlines != "" {
		for _, kv := range strings.Split(*deadlines, ",") {
			name, value, _ := strings.Cut(kv, "=")
			d, err := time.ParseDuration(value)
			i := slices.Index(names, name)
			if err != nil || d <= 0 || i < 0 {
				return nil, fmt.Errorf("-deadline: want NAME=DURATION with a known phase, got %q", kv)
			}
			ps[i].timeout = d
		}
	}
	if *failPhase != "" {
		name, mode, _ := strings.Cut(*failPhase, ":")
		i := slices.Index(names, name)
		if i < 0 || (mode != "" && mode != "hang") {
			return nil, fmt.Errorf("-fail-phase: want NAME or NAME:hang with a known phase, got %q", *failPhase)
		}
		ps[i].run = failing(mode == "hang")
	}
	return ps, nil
}

// failing is the run of a phase made to fail by -fail-phase: it returns an
// error, or with hang blocks forever, ignoring its context, as a stuck call
// would.
func failing(hang bool) func(context.Context, *Report) error {
	return func(context.Context, *Report) error {
		if hang {
			say("  -fail-phase: hanging")
			select {}
		}
		return fmt.Errorf("failed on purpose (-fail-phase %s)", *failPhase)
	}
}

// binaries builds the two services once (production binaries, no build tags)
// and returns their paths; a failed build is tried again by the next caller.
func (b *bench) binaries() (order, payment string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.orderBin == "" {
		say("building the services")
		if b.orderBin, b.paymentBin, err = harness.Build(filepath.Join(outDir, "bin")); err != nil {
			b.orderBin, b.paymentBin = "", ""
			return "", "", err
		}
	}
	return b.orderBin, b.paymentBin, nil
}

// stacks hands the saga, latency and drain phases one stack, as they shared it
// before each phase had its own deadline: a phase gets the stack the phase
// before it left, if that phase succeeded, else a new one.
type stacks struct {
	mu   sync.Mutex
	all  []*harness.Stack // every stack made, closed by closeAll
	idle *harness.Stack   // left by a phase that succeeded
}

// take returns the idle stack, or nil; the caller owns it until put.
func (st *stacks) take() *harness.Stack {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.idle
	st.idle = nil
	return s
}

// add records a new stack for closeAll; put makes s the idle stack.
func (st *stacks) add(s *harness.Stack) { st.mu.Lock(); st.all = append(st.all, s); st.mu.Unlock() }

func (st *stacks) put(s *harness.Stack) { st.mu.Lock(); st.idle = s; st.mu.Unlock() }

// closeAll closes every stack made so far (also one a hung phase still holds:
// killing its services only helps it end).
func (st *stacks) closeAll() {
	st.mu.Lock()
	all := st.all
	st.all, st.idle = nil, nil
	st.mu.Unlock()
	for _, s := range all {
		s.Close()
	}
}

// onSagaStack runs f on the shared saga stack. If f fails, the stack is closed
// (it may be in any state) and the next phase gets a new one.
func (b *bench) onSagaStack(f func(context.Context, *harness.Stack, *Report) error) func(context.Context, *Report) error {
	return func(ctx context.Context, r *Report) error {
		s := b.stacks.take()
		if s == nil {
			orderBin, paymentBin, err := b.binaries()
			if err != nil {
				return err
			}
			if s, err = newStack(ctx, infra, orderBin, paymentBin, "saga"); err != nil {
				return err
			}
			b.stacks.add(s)
		}
		if err := f(ctx, s, r); err != nil || ctx.Err() != nil {
			s.Close()
			return err
		}
		b.stacks.put(s)
		return nil
	}
}

// sleep waits d, or less if ctx ends first, and returns ctx.Err().
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return ctx.Err()
}

func extraEnv() []string {
	if *svcEnv == "" {
		return nil
	}
	return strings.Split(*svcEnv, ",")
}

func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64{}, xs...)
	sort.Float64s(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[min(i, len(s)-1)]
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if x < 0 {
		return -float64(int64(-x*p+0.5)) / p
	}
	return float64(int64(x*p+0.5)) / p
}
