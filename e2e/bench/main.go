// Command bench measures the whole saga (max sustained rate by bisection with
// the CPU-ms per order of each process, latency, forwarder drain, a Kafka
// outage, consumer-stack overhead) and the forwarder alone, against raw
// baselines measured in the same run on the same servers, judges the goals of
// issue 15 (ADR 0042), and writes build/bench/report.json, a table on
// stdout and build/bench/outage-latency.png. `make bench` runs it; see
// docs/benchmarks.md.
//
// Each phase runs under its own deadline. A phase that fails (error, panic,
// deadline) is recorded in the report's "phases" and the goals that depend on
// it are not met; the other phases still run. The report is always written and
// the table printed; then the exit status is 1 if any phase failed.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/messaging"
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
	phasesFlag   = flag.String("phases", "baselines,forwarder,saga,latency,drain,outage,consumer,galera", "comma-separated phases to run; the others are reported as skipped")
	stepDur      = flag.Duration("step", 30*time.Second, "duration of one load step of the saga phase's bisection (ADR 0042: at least 30 s for a real run)")
	repeats      = flag.Int("repeats", 3, "searches for the max sustained rate; the saga phase reports their median")
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
	b := &bench{kafka: messaging.KafkaConfig{Brokers: []string{infra.KafkaAddr()}, ClientID: "bench"}.Defaults()}
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
	kafka  messaging.KafkaConfig
	stacks stacks

	mu                   sync.Mutex
	orderBin, paymentBin string
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
		// of the others (ADR 0042).
		{"saga", 25 * time.Minute, b.onSagaStack(throughput)},
		// ~1 min: 20 s of load, up to 60 s of draining (and a new stack if the saga
		// phase did not leave one).
		{"latency", 6 * time.Minute, b.onSagaStack(latency)},
		// 1–2 min: 3,000 orders with Kafka down, a Kafka restart, up to 3 min until
		// the outbox is empty and 2 min of draining.
		{"drain", 12 * time.Minute, b.onSagaStack(drain)},
		// ~4 min: a new stack, 120 s of load around a 60 s outage, up to 120 s of
		// draining.
		{"outage", 12 * time.Minute, b.outage},
		// 2–3 min: building the payment service's test binary, then 5 runs per
		// mode, each a preload (up to 3 attempts) and a BenchmarkConsumer run of
		// at most consumerTimeout (a few seconds here).
		{"consumer", 15 * time.Minute, b.consumer},
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

func (b *bench) baselines(ctx context.Context, r *Report) error {
	say("baseline: MariaDB commit rate of an order-shaped transaction")
	rate, err := commitRate(ctx, 32, 8*time.Second)
	if err != nil {
		return fmt.Errorf("commit rate: %w", err)
	}
	r.Baselines.CommitRate, r.Baselines.CommitConcurrency = rate, 32
	say("baseline: raw produce rates and latency (acks=all, idempotent)")
	r.Baselines.ProduceSync, r.Baselines.ProduceAsync, r.Baselines.KafkaP99Ms, err = kafkaBaselines(ctx, b.kafka)
	return err
}

func (b *bench) outage(ctx context.Context, r *Report) error {
	b.stacks.closeAll() // the saga stack is done with: free its CPU
	orderBin, paymentBin, err := b.binaries()
	if err != nil {
		return err
	}
	s, err := newStack(ctx, infra, orderBin, paymentBin, "outage")
	if err != nil {
		return err
	}
	b.stacks.add(s)
	defer s.Close()
	say("Kafka outage at 30%% of max rate")
	return outage(ctx, s, r)
}

// newStack makes, starts, seeds and warms up a stack on the servers on; on
// error it closes what it made.
func newStack(ctx context.Context, on *harness.Infra, orderBin, paymentBin, name string) (*harness.Stack, error) {
	s, err := harness.NewStack(on, harness.StackConfig{
		Name: name + "_" + strings.ToLower(watermill.NewShortUUID()[:6]), OrderBin: orderBin, PaymentBin: paymentBin,
		LogDir:     filepath.Join(outDir, "logs"),
		OrderEnv:   append([]string{"LOG_LEVEL=warn", "ORDER_PAYMENT_TIMEOUT=10m"}, extraEnv()...),
		PaymentEnv: append([]string{"LOG_LEVEL=warn"}, extraEnv()...),
	})
	if err != nil {
		return nil, err
	}
	err = s.Start()
	if err == nil {
		var accounts []harness.Account
		for _, c := range customers {
			accounts = append(accounts, harness.Account{CustomerID: c, BalanceCents: 1_000_000_000_000, Currency: "EUR"})
		}
		err = s.SeedAccounts(accounts...)
	}
	if err == nil {
		say("warm-up: consumer groups joined, connections open")
		err = warmUp(ctx, s)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
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

// customers: many, so that payments of different orders rarely wait on the same
// account row.
var customers = func() []string {
	c := make([]string, 500)
	for i := range c {
		c[i] = fmt.Sprintf("bench-%d", i)
	}
	return c
}()

func load(ctx context.Context, s *harness.Stack, rate float64, d time.Duration) *harness.History {
	return harness.RunLoad(ctx, s, harness.LoadConfig{
		Rate: rate, Duration: d, Mix: []harness.Customer{{IDs: customers, Weight: 1}},
		MinAmount: 100, MaxAmount: 1000, Seed: uint64(time.Now().UnixNano()),
	})
}

// commitRate measures transactions/s of INSERT order row + INSERT outbox row
// (through messaging.Outbox, the services' code), at the given concurrency.
func commitRate(ctx context.Context, concurrency int, d time.Duration) (float64, error) {
	db, err := freshDB(infra.OrderDBAddr(), "bench_commits")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(concurrency)
	if err := messaging.Migrate(ctx, db, nil, slog.New(slog.DiscardHandler)); err != nil {
		return 0, err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE orders (id VARCHAR(64) PRIMARY KEY, customer_id VARCHAR(64) NOT NULL,
		amount_cents BIGINT NOT NULL, currency CHAR(3) NOT NULL, status VARCHAR(16) NOT NULL,
		cancel_reason VARCHAR(255) NOT NULL DEFAULT '', paid BOOLEAN NOT NULL DEFAULT FALSE,
		refunded BOOLEAN NOT NULL DEFAULT FALSE, version INT NOT NULL, created_at TIMESTAMP(6) NOT NULL,
		updated_at TIMESTAMP(6) NOT NULL, KEY (customer_id, created_at), KEY (status, created_at))`); err != nil {
		return 0, err
	}
	outbox, err := messaging.NewOutbox(messaging.OutboxConfig{})
	if err != nil {
		return 0, err
	}
	var n atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				id := fmt.Sprintf("%d-%d-%s", w, i, watermill.NewShortUUID())
				err := messaging.InTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error {
					now := time.Now().UTC()
					if _, err := tx.ExecContext(ctx, `INSERT INTO orders (id, customer_id, amount_cents, currency, status,
						version, created_at, updated_at) VALUES (?, 'c-1', 100, 'EUR', 'PENDING', 1, ?, ?)`, id, now, now); err != nil {
						return err
					}
					return events.Write(ctx, outbox, tx, "orders", events.Event{ID: watermill.NewUUID(), OrderID: id,
						OrderVersion: 1, OccurredAt: now, Payload: events.OrderPlaced{CustomerID: "c-1", Amount: events.Money{MinorUnits: 100, Currency: "EUR"}}})
				})
				if err != nil {
					errs <- err
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := <-errs; err != nil {
		return 0, err
	}
	return round(float64(n.Load())/d.Seconds(), 0), nil
}

func freshDB(addr, name string) (*sql.DB, error) {
	admin, err := sql.Open("mysql", testenv.DSN(addr, ""))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if _, err := admin.Exec("DROP DATABASE IF EXISTS `" + name + "`"); err != nil {
		return nil, err
	}
	if _, err := admin.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		return nil, err
	}
	return sql.Open("mysql", testenv.DSN(addr, name))
}

// kafkaBaselines measures the raw produce rate with the services' producer
// settings, synchronously (one message at a time, like Watermill's publisher) and
// asynchronously (batched), and the produce→consume p99 at a low rate.
func kafkaBaselines(ctx context.Context, kafka messaging.KafkaConfig) (syncRate, asyncRate, p99ms float64, err error) {
	topic := "bench-raw-" + strings.ToLower(watermill.NewShortUUID()[:6])
	if err := kafka.EnsureTopics(ctx, []messaging.TopicSpec{{Name: topic, Partitions: events.DefaultPartitions}}); err != nil {
		return 0, 0, 0, err
	}
	if err := waitLeaders(ctx, kafka, topic, events.DefaultPartitions); err != nil {
		return 0, 0, 0, err
	}
	payload := make([]byte, 450) // about an event in its envelope with headers
	msg := func(i int) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.ByteEncoder(payload)}
	}
	syncP, err := sarama.NewSyncProducer(kafka.Brokers, kafka.ProducerConfig())
	if err != nil {
		return 0, 0, 0, err
	}
	defer syncP.Close()
	n, d := 0, 5*time.Second
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		if _, _, err := syncP.SendMessage(msg(n)); err != nil {
			return 0, 0, 0, err
		}
		if ctx.Err() != nil {
			return 0, 0, 0, ctx.Err()
		}
	}
	syncRate = float64(n) / d.Seconds()

	// produce→consume latency at 100 messages/s
	consumer, err := sarama.NewConsumer(kafka.Brokers, kafka.ConsumerConfig())
	if err != nil {
		return 0, 0, 0, err
	}
	defer consumer.Close()
	var mu sync.Mutex
	var lat []float64
	for p := range int32(events.DefaultPartitions) {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, 0, 0, err
		}
		defer pc.AsyncClose()
		go func() {
			for m := range pc.Messages() {
				var sent int64
				if len(m.Value) >= 8 {
					for _, b := range m.Value[:8] {
						sent = sent<<8 | int64(b)
					}
				}
				mu.Lock()
				lat = append(lat, float64(time.Now().UnixNano()-sent)/1e6)
				mu.Unlock()
			}
		}()
	}
	if err := sleep(ctx, time.Second); err != nil {
		return 0, 0, 0, err
	}
	for i := range 500 {
		v := make([]byte, 450)
		now := time.Now().UnixNano()
		for b := 7; b >= 0; b-- {
			v[b] = byte(now)
			now >>= 8
		}
		if _, _, err := syncP.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.ByteEncoder(v)}); err != nil {
			return 0, 0, 0, err
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return 0, 0, 0, err
		}
	}
	if err := sleep(ctx, time.Second); err != nil {
		return 0, 0, 0, err
	}
	mu.Lock()
	p99ms = percentile(lat, 0.99)
	mu.Unlock()

	cfg := kafka.ProducerConfig()
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	asyncP, err := sarama.NewAsyncProducer(kafka.Brokers, cfg)
	if err != nil {
		return 0, 0, 0, err
	}
	var acked, refused atomic.Int64
	var drained sync.WaitGroup
	drained.Add(2)
	go func() {
		defer drained.Done()
		for range asyncP.Successes() {
			acked.Add(1)
		}
	}()
	go func() {
		defer drained.Done()
		for range asyncP.Errors() {
			refused.Add(1)
		}
	}()
	// closeAsync flushes what is still queued while Kafka is up (an AsyncClose
	// left it sending into the servers' shutdown at the end of the run) and says
	// once how many messages were refused.
	closeAsync := func() {
		asyncP.AsyncClose()
		drained.Wait()
		if n := refused.Load(); n > 0 {
			say("baseline: %d async produce(s) refused", n)
		}
	}
	startAcked, t0 := acked.Load(), time.Now()
	for i := 0; time.Since(t0) < d; i++ {
		select {
		case asyncP.Input() <- msg(i):
		case <-ctx.Done():
			closeAsync()
			return 0, 0, 0, ctx.Err()
		}
	}
	asyncRate = float64(acked.Load()-startAcked) / time.Since(t0).Seconds()
	closeAsync()
	return round(syncRate, 0), round(asyncRate, 0), round(p99ms, 1), nil
}

// orderTimes reads, for each order, when it was created and when it last changed
// (its terminal state, in these runs).
func orderTimes(ctx context.Context, s *harness.Stack) (map[string][2]time.Time, map[string]string, error) {
	rows, err := s.OrderDB.QueryContext(ctx, "SELECT id, status, created_at, updated_at FROM orders")
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	times, status := map[string][2]time.Time{}, map[string]string{}
	for rows.Next() {
		var id, st string
		var c, u time.Time
		if err := rows.Scan(&id, &st, &c, &u); err != nil {
			return nil, nil, err
		}
		times[id], status[id] = [2]time.Time{c, u}, st
	}
	return times, status, rows.Err()
}

// settle is how long after a step its orders may still complete and count.
const settle = 3 * time.Second

// stepResult judges one load step of d at rate (stepPasses), settle after its
// end: the step's accepted orders that are terminal count as completed, and its
// p99 is over every accepted order, one still PENDING counting with its age.
func stepResult(ctx context.Context, s *harness.Stack, rate float64, d time.Duration, h *harness.History) (Step, error) {
	if err := sleep(ctx, settle); err != nil {
		return Step{}, err
	}
	times, status, err := orderTimes(ctx, s)
	if err != nil {
		return Step{}, err
	}
	return judgeStep(rate, d, h.AcceptedIDs(), times, status, time.Now()), nil
}

// judgeStep is stepResult's verdict on a step that offered rate for d, from
// the step's accepted orders, every order's created/updated times and status,
// read at now: an accepted order not PENDING is completed; the p99 is over all
// accepted orders, one still PENDING counting with its age at now (so more than
// 1% of them pending fails the p99 on its own) and one not found with 0.
func judgeStep(rate float64, d time.Duration, accepted []string, times map[string][2]time.Time, status map[string]string, now time.Time) Step {
	st := Step{Rate: rate, StepSec: d.Seconds()}
	var lats []float64
	completed := 0
	for _, id := range accepted {
		st.Accepted++
		t, known := times[id]
		switch {
		case !known: // accepted, not visible: count it as just created
			st.Backlog++
			lats = append(lats, 0)
		case status[id] == "PENDING":
			st.Backlog++
			lats = append(lats, now.Sub(t[0]).Seconds()*1000)
		default:
			completed++
			lats = append(lats, t[1].Sub(t[0]).Seconds()*1000)
		}
	}
	st.completed = completed
	st.Completed = round(float64(completed)/d.Seconds(), 1)
	st.P99Ms = round(percentile(lats, 0.99), 1)
	st.Passed = stepPasses(rate, st.Completed, st.P99Ms)
	return st
}

// warmUp runs a few orders end to end, so that the first measured step does not
// pay for consumer-group joins, partition assignment and cold connection pools.
func warmUp(ctx context.Context, s *harness.Stack) error {
	for range 3 {
		h := load(ctx, s, 20, 5*time.Second)
		waitDrained(ctx, s, 60*time.Second)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if len(h.AcceptedIDs()) == 0 {
			return fmt.Errorf("warm-up: no order accepted")
		}
	}
	return nil
}

// waitDrained waits until the stack's consumers have caught up and no order is
// PENDING, for at most limit and no longer than ctx.
func waitDrained(ctx context.Context, s *harness.Stack, limit time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	_ = s.WaitDrained(ctx)
	for ctx.Err() == nil {
		var n int
		if err := s.OrderDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders WHERE status = 'PENDING'").Scan(&n); err == nil && n == 0 {
			return
		}
		_ = sleep(ctx, 200*time.Millisecond)
	}
}

// throughput searches the max sustained rate *repeats times (searchMax), the
// first from [50, 100].
func throughput(ctx context.Context, s *harness.Stack, r *Report) error {
	say("saga throughput: bisection, %s steps, %d repeats", *stepDur, *repeats)
	var err error
	r.CPU, err = searchMax(ctx, s, &r.Throughput, 50, 100)
	return err
}

// searchMax searches the max sustained rate *repeats times (search, ADR
// 0042): the first from [lo, hi] (doubling until a step fails, then
// bisecting), the others from narrowBracket around the first result, and
// records them in t. The result is the median; it returns the CPU split of the
// passing step at the highest rate in the repeat whose result is the median.
func searchMax(ctx context.Context, s *harness.Stack, t *Throughput, lo, hi float64) (CPU, error) {
	var results []float64
	for i := range *repeats {
		if i > 0 {
			lo, hi = narrowBracket(results[0])
		}
		rp := Repeat{BracketLo: lo, BracketHi: hi}
		res, err := search(ctx, lo, hi, func(ctx context.Context, rate float64) (bool, error) {
			st, err := runStep(ctx, s, rate, *stepDur)
			if err != nil {
				return false, err
			}
			say("  repeat %d: %4.0f/s offered: %6.1f/s completed, p99 %7.1f ms, backlog %d, passed %v",
				i+1, rate, st.Completed, st.P99Ms, st.Backlog, st.Passed)
			rp.Steps = append(rp.Steps, st)
			waitDrained(ctx, s, 60*time.Second)
			return st.Passed, ctx.Err()
		})
		rp.Result = res
		t.Repeats = append(t.Repeats, rp)
		if err != nil {
			return CPU{}, err
		}
		if res == 0 {
			return CPU{}, fmt.Errorf("repeat %d: no step passed (lowest tried %.0f/s)", i+1, rp.Steps[len(rp.Steps)-1].Rate)
		}
		say("  repeat %d: max sustained %.0f/s", i+1, res)
		results = append(results, res)
	}
	t.MaxSustained = median(results)
	return cpuAtMax(t.Repeats, t.MaxSustained), ctx.Err()
}

// cpuAtMax is the CPU split of the passing step at the highest rate of the
// repeat whose result is closest to the median m (the median itself for an odd
// number of repeats).
func cpuAtMax(rs []Repeat, m float64) CPU {
	var best CPU
	bestDist := -1.0
	for _, rp := range rs {
		if d := abs(rp.Result - m); bestDist < 0 || d < bestDist {
			for _, st := range rp.Steps {
				if st.Passed && st.Rate == rp.Result {
					best, bestDist = st.cpu, d
				}
			}
		}
	}
	return best
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// runStep offers rate for d, judges the step (stepResult) and measures the CPU
// each process used from the step's start to its judgement.
func runStep(ctx context.Context, s *harness.Stack, rate float64, d time.Duration) (Step, error) {
	before, err := sampleCPU(s)
	if err != nil {
		return Step{}, err
	}
	h := load(ctx, s, rate, d)
	st, err := stepResult(ctx, s, rate, d, h)
	if err != nil {
		return Step{}, err
	}
	after, err := sampleCPU(s)
	if err != nil {
		return Step{}, err
	}
	st.cpu = cpuSplit(before, after, st.completed, clockTicks, numCPU)
	st.cpu.Rate = rate
	return st, nil
}

func latency(ctx context.Context, s *harness.Stack, r *Report) error {
	say("latency at 50%% of %.0f orders/s", r.Throughput.MaxSustained)
	var err error
	r.Latency, err = measureLatency(ctx, s, r.Throughput.MaxSustained/2)
	return err
}

// measureLatency offers rate for 20 s and returns the accepted orders' latencies.
func measureLatency(ctx context.Context, s *harness.Stack, rate float64) (Latency, error) {
	d := 20 * time.Second
	h := load(ctx, s, rate, d)
	if err := sleep(ctx, 3*time.Second); err != nil {
		return Latency{}, err
	}
	times, _, err := orderTimes(ctx, s)
	if err != nil {
		return Latency{}, err
	}
	var server, client, post []float64
	for _, q := range h.Requests {
		if q.Outcome != harness.Accepted {
			continue
		}
		t := times[q.OrderID]
		server = append(server, t[1].Sub(t[0]).Seconds()*1000)
		client = append(client, t[1].Sub(q.SentAt).Seconds()*1000)
		post = append(post, q.Latency.Seconds()*1000)
	}
	l := Latency{Rate: rate, Orders: len(server),
		ServerP50: round(percentile(server, 0.5), 1), ServerP99: round(percentile(server, 0.99), 1), ServerP999: round(percentile(server, 0.999), 1),
		ClientP50: round(percentile(client, 0.5), 1), ClientP99: round(percentile(client, 0.99), 1), ClientP999: round(percentile(client, 0.999), 1),
		PostP99: round(percentile(post, 0.99), 1)}
	waitDrained(ctx, s, 60*time.Second)
	return l, ctx.Err()
}

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

// outage runs load at 30% of the max rate and kills Kafka for 60 s in the
// middle. If ctx ends while Kafka is down, Kafka is left stopped: the next
// phase starts it (infra.Up).
func outage(ctx context.Context, s *harness.Stack, r *Report) error {
	rate := max(5, r.Throughput.MaxSustained*0.3)
	before, down, after := 15*time.Second, 60*time.Second, 45*time.Second
	var killedAt, backAt time.Time
	faultErr := make(chan error, 1)
	start := time.Now()
	go func() {
		if err := sleep(ctx, before); err != nil {
			faultErr <- err
			return
		}
		killedAt = time.Now()
		if err := infra.Kill(harness.Kafka); err != nil {
			faultErr <- err
			return
		}
		if err := sleep(ctx, down); err != nil {
			faultErr <- err
			return
		}
		err := infra.Start(harness.Kafka)
		backAt = time.Now()
		faultErr <- err
	}()
	h := load(ctx, s, rate, before+down+after)
	if err := <-faultErr; err != nil {
		return err
	}
	waitDrained(ctx, s, 120*time.Second)
	times, _, err := orderTimes(ctx, s)
	if err != nil {
		return err
	}
	o := Outage{Rate: rate, OutageSec: down.Seconds()}
	var duringPost, baseline []float64
	var pts []point
	var lastBefore time.Time // latest terminal time of an order accepted before Kafka came back
	for _, q := range h.Requests {
		if q.Outcome != harness.Accepted {
			o.IntakeErrors++
			continue
		}
		t := times[q.OrderID]
		lat := t[1].Sub(t[0]).Seconds() * 1000
		pts = append(pts, point{x: t[0].Sub(start).Seconds(), y: lat})
		switch {
		case q.SentAt.Before(killedAt):
			baseline = append(baseline, lat)
		case q.SentAt.Before(backAt):
			duringPost = append(duringPost, q.Latency.Seconds()*1000)
		}
		if q.SentAt.Before(backAt) && t[1].After(lastBefore) {
			lastBefore = t[1]
		}
	}
	o.PostP99DuringMs = round(percentile(duringPost, 0.99), 1)
	o.BaselineP99Ms = round(percentile(baseline, 0.99), 1)
	o.DrainedAfterSec = round(lastBefore.Sub(backAt).Seconds(), 1)
	o.NormalAfterSec = round(normalAfter(pts, backAt.Sub(start).Seconds(), o.BaselineP99Ms), 1)
	r.Outage = o
	return plotOutage(pts, killedAt.Sub(start).Seconds(), backAt.Sub(start).Seconds(), filepath.Join(outDir, "outage-latency.png"))
}

type point struct{ x, y float64 }

// normalAfter returns the seconds after back from which every 1-second bucket of
// newly created orders has a p99 within 1.5× the baseline p99 (or +50 ms), or -1
// if the last bucket of the run is still above that (not normal within the run).
func normalAfter(pts []point, back, baseP99 float64) float64 {
	limit := max(1.5*baseP99, baseP99+50)
	buckets := map[int][]float64{}
	last := 0
	for _, p := range pts {
		if p.x >= back {
			b := int(p.x - back)
			buckets[b] = append(buckets[b], p.y)
			last = max(last, b)
		}
	}
	normal := 0
	for b := 0; b <= last; b++ {
		if len(buckets[b]) > 0 && percentile(buckets[b], 0.99) > limit {
			normal = b + 1
		}
	}
	if normal > last {
		return -1
	}
	return float64(normal)
}

// consumerTimeout bounds one BenchmarkConsumer run, given to it as -bench.timeout: 3,000
// events take a few seconds here, 4 minutes leaves room for a much slower or
// busier machine.
const consumerTimeout = 4 * time.Minute

func (b *bench) consumer(ctx context.Context, r *Report) error {
	say("consumer stack vs bare loop, %d alternating runs per mode", *consumerRuns)
	const n = 3000
	// BenchmarkConsumer lives next to the code it measures, in the payment
	// service's test files (ADR 30): build that package's test binary.
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
func consumerRun(ctx context.Context, bin string, kafka messaging.KafkaConfig, mode string, n int) (float64, error) {
	msgs := make([]*message.Message, 0, n)
	for i := range n {
		m, err := events.Encode(events.Event{ID: watermill.NewUUID(), OrderID: watermill.NewUUID(), OrderVersion: 1,
			OccurredAt: time.Now(), Payload: events.OrderPlaced{CustomerID: customers[i%len(customers)], Amount: events.Money{MinorUnits: 100, Currency: "EUR"}}})
		if err != nil {
			return 0, err
		}
		msgs = append(msgs, m)
	}
	topic, err := preload(ctx, kafka, "bench-consumer-"+mode, msgs)
	if err != nil {
		return 0, err
	}
	defer deleteTopic(kafka, topic)
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
