package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/pkg/consumer/strategies"
	"github.com/onceflow/onceflow/pkg/servicemain"
)

// strategy is one line of the comparison: how the payment service's
// consumer of order events is configured, and what this strategy promises on
// top of what every strategy must keep.
type strategy struct {
	name string
	// mode is the consumer's failure mode (PAYMENT_FAILURE_MODES); env, further
	// PAYMENT_* variables (each must be one the service reads).
	mode strategies.Mode
	env  []string
	// orchestrated: the harness restarts the payment process, at most every
	// 10 s, while its /healthz answers 503 (what an orchestrator does).
	orchestrated bool
	// stalls: the strategy may hold a partition behind a message that never
	// succeeds, so orders on it end by the payment timeout, and a refund queued
	// behind it waits: "every accepted order terminal" and agreement (I3) are
	// reported for it, not asserted.
	stalls bool
	// promise returns the strategy's own broken promises; cost, what it is known
	// to give up (reported as expected, never a failure).
	promise, cost func(r *harness.StrategyRow) []string
}

// comparedStrategies is the comparison's table: the same load and faults run for
// each. A strategy whose failure mode the payment service does not know yet
// fails the test (see checkStrategy).
func comparedStrategies() []strategy {
	return []strategy{
		{name: "poison", mode: strategies.Poison, promise: keeps(noLoss)},
		{name: "block", mode: strategies.Block, stalls: true, promise: keeps(noLoss, inOrder)},
		{name: "skip", mode: strategies.Skip, cost: keeps(noLoss)},
		{name: "stop", mode: strategies.Stop, orchestrated: true, stalls: true, promise: keeps(noLoss)},
		{name: "requeue", mode: strategies.Requeue, promise: keeps(noLoss)},
		{name: "park-key", mode: strategies.ParkKey, promise: keeps(noLoss, inOrder)},
		{name: "pause", mode: strategies.Pause, promise: keeps(noLoss)},
		{name: "poison+breaker", mode: strategies.Poison, env: []string{"PAYMENT_BREAKER_ENABLED=true"}, promise: keeps(noLoss)},
	}
}

func noLoss(r *harness.StrategyRow) string {
	if r.Lost > 0 {
		return fmt.Sprintf("%d event(s) lost: never processed and held nowhere for a replay", r.Lost)
	}
	return ""
}

func inOrder(r *harness.StrategyRow) string {
	if r.OutOfOrderKeys > 0 {
		return fmt.Sprintf("%d order(s) had a later event processed before an earlier one", r.OutOfOrderKeys)
	}
	return ""
}

// keeps turns checks into a promise (or a cost): the messages of those broken.
func keeps(checks ...func(*harness.StrategyRow) string) func(*harness.StrategyRow) []string {
	return func(r *harness.StrategyRow) []string {
		var out []string
		for _, c := range checks {
			if m := c(r); m != "" {
				out = append(out, m)
			}
		}
		return out
	}
}

func isStrategy(name string) bool {
	for _, st := range comparedStrategies() {
		if st.name == name {
			return true
		}
	}
	return false
}

// The comparison's timeline, from the start of the load.
const (
	compareRate        = 25 // orders per second
	compareLoad        = 42 * time.Second
	compareGarbageAt   = 3 * time.Second
	compareGarbage     = 20
	compareCursedAt    = 5 * time.Second
	compareCursed      = 5
	compareCancelAfter = 2 * time.Second
	compareFlakyFrom   = 6 * time.Second
	compareFlakyTo     = 20 * time.Second
	compareFlakyEvery  = 500 * time.Millisecond
	compareOutageAt    = 25 * time.Second
	compareOutage      = 20 * time.Second
	// comparePaymentTimeout cancels what is never paid; compareSettle bounds
	// the wait after the load (more than the timeout, so a stalled partition's
	// last order still ends).
	comparePaymentTimeout = 60 * time.Second
	compareSettle         = 65 * time.Second
	cursedPrefix          = "cursed-"
	flakyPrefix           = "flaky-"
)

// healthyCustomer: not one the faults make fail.
func healthyCustomer(c string) bool {
	return !strings.HasPrefix(c, cursedPrefix) && !strings.HasPrefix(c, flakyPrefix)
}

// TestStrategies compares the failure strategies of the payment service's
// consumer (ADR 37, docs/strategies.md): for each strategy of the table, a
// fresh stack, the same open-model load and the same faults (garbage on the
// orders topic, orders whose placement fails permanently and are then
// cancelled, orders whose placement fails until a bug heals, a 20 s payment
// database outage), then measurements from the stores, one object per strategy
// in build/e2e/strategies.json. It asserts only what every strategy must keep
// (no double charge, money balances, every accepted order terminal unless the
// strategy may stall) and each strategy's own cheap promise; a strategy's
// known cost (skip loses events) is reported, not failed. SCENARIO=<strategy>
// runs one.
func TestStrategies(t *testing.T) {
	if testing.Short() {
		t.Skip("strategy comparison: skipped with -short")
	}
	// Beside TestFaults, on its own servers: the load of both is a
	// fraction of the machine, and together they take the time of the longer.
	t.Parallel()
	longLane(t)
	seed := suiteSeed(t)
	t.Logf("seed %d (replay with ONCEFLOW_E2E_SEED=%d)", seed, seed)
	only := os.Getenv("SCENARIO")
	if only != "" && !isStrategy(only) && !isScenario(only) {
		t.Fatalf("no strategy named %q", only)
	}
	var rows []*harness.StrategyRow
	defer func() {
		table := make([]harness.StrategyRow, len(rows))
		for i, r := range rows {
			table[i] = *r
		}
		t.Logf("the comparison (build/e2e/strategies.json; docs/strategies.md: go run ./e2e/strategies-table):\n%s", harness.StrategiesTable(table))
	}()
	for _, st := range comparedStrategies() {
		if only != "" && only != st.name {
			continue
		}
		t.Run(st.name, func(t *testing.T) {
			checkStrategy(t, st)
			row := runStrategy(t, st, seed)
			rows = append(rows, row)
			writeStrategies(t, rows)
			line, _ := json.Marshal(row)
			fmt.Printf("strategy %s: %s\n", st.name, line)
			for _, e := range row.Expected {
				t.Logf("expected cost of %s: %s", st.name, e)
			}
			if !row.Pass {
				t.Errorf("strategy %s broke a promise:\n  %s", st.name, strings.Join(row.Violations[:min(20, len(row.Violations))], "\n  "))
			}
		})
	}
}

func isScenario(name string) bool {
	if name == allClusterScenarios || isDBLane(name) || isDebeziumLane(name) {
		return true
	}
	for _, sc := range scenarios() {
		if sc.name == name {
			return true
		}
	}
	return false
}

// checkStrategy fails the test when the payment service cannot run st: a
// failure mode it does not know (not merged yet), or a variable it does not
// read (it would be ignored and the run would measure another strategy).
func checkStrategy(t *testing.T, st strategy) {
	t.Helper()
	if err := st.mode.Validate(); err != nil {
		t.Fatalf("strategy %s cannot run: %v (the payment service does not have it yet)", st.name, err)
	}
	params, err := env.GetFieldParamsWithOptions(&servicemain.Common{}, env.Options{Prefix: "PAYMENT_"})
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, p := range params {
		known[p.Key] = true
	}
	for _, kv := range st.env {
		if name, _, _ := strings.Cut(kv, "="); !known[name] {
			t.Fatalf("strategy %s cannot run: the payment service does not read %s (not merged yet?)", st.name, name)
		}
	}
}

// compareAccounts: the load's accounts, and funded accounts for the cursed and
// flaky customers (their orders fail only because of the faults).
func compareAccounts() []harness.Account {
	accounts := loadAccounts()
	for _, id := range append(customerIDs(cursedPrefix[:len(cursedPrefix)-1], compareCursed), customerIDs(flakyPrefix[:len(flakyPrefix)-1], 10)...) {
		accounts = append(accounts, harness.Account{CustomerID: id, BalanceCents: 100_000_000, Currency: "EUR"})
	}
	return accounts
}

// runStrategy runs the comparison's load and faults against a stack whose
// payment consumer uses st, and measures the outcome.
func runStrategy(t *testing.T, st strategy, seed uint64) *harness.StrategyRow {
	t.Helper()
	begin := time.Now()
	cfg := harness.StackConfig{
		OrderEnv: []string{"ORDER_PAYMENT_TIMEOUT=" + comparePaymentTimeout.String()},
		PaymentEnv: append([]string{
			"PAYMENT_FAILURE_MODES=payment.order-events:" + string(st.mode),
			"PAYMENT_FAULT_PERMANENT_CUSTOMER_PREFIX=" + cursedPrefix,
			"PAYMENT_FAULT_TRANSIENT_CUSTOMER_PREFIX=" + flakyPrefix,
			"PAYMENT_FAULT_TRANSIENT_FOR=30s",
		}, st.env...),
	}
	if testing.Short() {
		t.Skip("strategy comparison: skipped with -short")
	}
	s := newStackOn(t, strategiesLane.get(t), cfg, compareAccounts()...)
	initial, err := s.TotalMoney()
	if err != nil {
		t.Fatal(err)
	}
	f := &faultRun{t: t, infra: s.Infra, s: s, rng: rand.New(rand.NewPCG(seed, 13)),
		expectedPoison: map[string]bool{}, down: map[*harness.Service]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var restarts int
	var orchestrator sync.WaitGroup
	if st.orchestrated {
		orchestrator.Add(1)
		go func() { defer orchestrator.Done(); restarts = orchestrate(ctx, f, s.Payments[0]) }()
	}

	t.Logf("%s: load %d/s for %s; faults: %d bad messages at %s, %d cursed orders at %s (cancelled %s later), flaky orders %s-%s, payment DB kill -9 at %s for %s",
		st.name, compareRate, compareLoad, compareGarbage, compareGarbageAt, compareCursed, compareCursedAt, compareCancelAfter,
		compareFlakyFrom, compareFlakyTo, compareOutageAt, compareOutage)
	f.start = time.Now()
	timeline := &compareTimeline{f: f}
	faultErr := make(chan error, 1)
	go func() { faultErr <- timeline.play(ctx) }()
	history := harness.RunLoad(ctx, s, harness.LoadConfig{
		Rate: compareRate, Duration: compareLoad, Seed: seed,
		Mix: []harness.Customer{
			{IDs: richCustomers, Weight: 80}, {IDs: poorCustomers, Weight: 12}, {IDs: ghostCustomers, Weight: 8},
		},
		MinAmount: 100, MaxAmount: 2_000, CancelFraction: 0.1,
	})
	if err := <-faultErr; err != nil {
		t.Fatalf("fault timeline: %v", err)
	}
	t.Logf("%s: t=%.0fs load and faults done; waiting up to %s for every order to end", st.name, time.Since(f.start).Seconds(), compareSettle)
	history.Requests = append(history.Requests, timeline.requests()...)
	settled := s.Settle(history.AcceptedIDs(), f.start.Add(compareLoad+compareSettle))
	t.Logf("%s: t=%.0fs settled=%v; measuring", st.name, time.Since(f.start).Seconds(), settled)
	cancel()
	orchestrator.Wait()

	f.mu.Lock()
	repaired, faults, injected := f.ended, f.log, f.expectedPoison
	f.mu.Unlock()
	report := harness.Evaluate(history, s.Snapshot(), harness.CheckConfig{InitialMoney: initial})
	row := &harness.StrategyRow{Strategy: st.name, Double: report.DoubleCharged, MoneyDelta: report.MoneyDelta,
		OverRefunded: report.OverRefunded, Disagreements: report.Disagreements, Restarts: restarts, Faults: faults}
	in, err := s.CompareInput(injected, history.Requests, healthyCustomer, repaired)
	if err != nil {
		t.Fatalf("reading the stores: %v", err)
	}
	harness.CompareStrategy(row, in)
	audit, auditErr := s.Audit(ctxFor(t, 2*time.Minute), time.Now())
	row.Audit = audit
	judge(row, st)
	if auditErr != nil {
		row.Violations = append(row.Violations, auditErr.Error())
		row.Pass = false
	}
	if !st.orchestrated && !s.Payments[0].Running() {
		row.Violations = append(row.Violations, "the payment process exited on its own; see "+s.Payments[0].Log)
		row.Pass = false
	}
	row.DurationS = round1(time.Since(begin).Seconds())
	return row
}

// judge fills Violations, Expected and Pass: what every strategy must keep,
// then st's own promise and cost.
func judge(row *harness.StrategyRow, st strategy) {
	broken, expected := []string{}, []string{}
	must := func(ok bool, format string, args ...any) {
		if !ok {
			broken = append(broken, fmt.Sprintf(format, args...))
		}
	}
	must(row.Double == 0, "%d order(s) charged twice", row.Double)
	must(row.OverRefunded == 0, "%d order(s) refunded more than charged", row.OverRefunded)
	must(row.MoneyDelta == 0, "money does not balance: off by %d cents", row.MoneyDelta)
	must(len(row.Audit) == 0, "the production auditor reported violations: %v", row.Audit)
	stalled := []string{}
	if row.NotTerminal > 0 {
		stalled = append(stalled, fmt.Sprintf("%d accepted order(s) not terminal", row.NotTerminal))
	}
	if row.Disagreements > 0 {
		stalled = append(stalled, fmt.Sprintf("%d order(s) disagree with the ledger (I3)", row.Disagreements))
	}
	if st.stalls {
		expected = append(expected, stalled...)
	} else {
		broken = append(broken, stalled...)
	}
	if st.promise != nil {
		broken = append(broken, st.promise(row)...)
	}
	if st.cost != nil {
		expected = append(expected, st.cost(row)...)
	}
	row.Violations, row.Expected, row.Pass = broken, expected, len(broken) == 0
}

// orchestrate restarts svc while its /healthz answers 503, at most every 10 s,
// until ctx ends, and returns how often it did.
func orchestrate(ctx context.Context, f *faultRun, svc *harness.Service) int {
	restarts := 0
	var last time.Time
	client := &http.Client{Timeout: time.Second}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
		if time.Since(last) < 10*time.Second {
			continue
		}
		unhealthy := !svc.Running()
		if resp, err := client.Get("http://" + svc.HTTPAddr + "/healthz"); err == nil {
			unhealthy = unhealthy || resp.StatusCode == http.StatusServiceUnavailable
			resp.Body.Close()
		}
		if !unhealthy || ctx.Err() != nil {
			continue
		}
		from := time.Now()
		if svc.Running() {
			_ = svc.Kill()
		}
		if err := svc.Start(); err == nil {
			restarts++
			f.record("restart "+svc.Name+" (/healthz 503)", from, time.Since(from))
			f.t.Logf("t=%.1fs orchestrator: %s answered 503 on /healthz, restarted it", from.Sub(f.start).Seconds(), svc.Name)
		}
		last = time.Now()
	}
	return restarts
}

// compareTimeline plays the comparison's faults and keeps the orders it
// placed itself (cursed and flaky customers) for the measurements.
type compareTimeline struct {
	f *faultRun

	mu     sync.Mutex
	placed []harness.Request
	wg     sync.WaitGroup
}

func (c *compareTimeline) requests() []harness.Request {
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]harness.Request{}, c.placed...)
}

func (c *compareTimeline) say(format string, args ...any) {
	c.f.t.Logf("t=%.1fs %s", time.Since(c.f.start).Seconds(), fmt.Sprintf(format, args...))
}

func (c *compareTimeline) play(ctx context.Context) error {
	f := c.f
	f.sleepUntil(compareGarbageAt)
	if err := f.injectBad([]string{f.s.Topics.Orders}, compareGarbage); err != nil {
		return err
	}
	c.say("published %d bad messages (malformed, unknown type, invalid) on the orders topic, each with its own key", compareGarbage)

	f.sleepUntil(compareCursedAt)
	for i := range compareCursed {
		id, err := c.place(ctx, fmt.Sprintf("%s%d", cursedPrefix, i+1))
		if err != nil {
			return err
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			time.Sleep(compareCancelAfter)
			status, _, err := f.s.CancelOrder(ctx, id)
			c.say("cancelled cursed order %s: %d %v", id, status, errOrEmpty(err))
		}()
	}
	c.say("placed %d orders of cursed customers: their OrderPlaced fails permanently, their OrderCancelled (in %s) is fine", compareCursed, compareCancelAfter)
	f.record(fmt.Sprintf("%d cursed orders, each cancelled %s later", compareCursed, compareCancelAfter), f.start.Add(compareCursedAt), compareCancelAfter)

	f.sleepUntil(compareFlakyFrom)
	flaky := 0
	for at := compareFlakyFrom; at < compareFlakyTo; at += compareFlakyEvery {
		f.sleepUntil(at)
		if _, err := c.place(ctx, fmt.Sprintf("%s%d", flakyPrefix, flaky%10+1)); err != nil {
			return err
		}
		flaky++
	}
	c.say("placed %d orders of flaky customers since t=%s: their OrderPlaced fails until 30 s after the first failure", flaky, compareFlakyFrom)
	f.record(fmt.Sprintf("%d flaky orders (the bug heals 30 s after its first failure)", flaky), f.start.Add(compareFlakyFrom), compareFlakyTo-compareFlakyFrom)

	f.sleepUntil(compareOutageAt)
	c.say("kill -9 the payment database for %s", compareOutage)
	if err := f.killServer(harness.PaymentDB, compareOutage); err != nil {
		return err
	}
	c.say("the payment database is back")
	return nil
}

// place posts one order outside the load and keeps it as an accepted request.
func (c *compareTimeline) place(ctx context.Context, customer string) (string, error) {
	sent := time.Now()
	status, o, err := c.f.s.PlaceOrder(ctx, 0, customer, 1_000, "EUR")
	if err != nil || status != http.StatusCreated {
		return "", fmt.Errorf("placing an order for %s: status %d %v", customer, status, err) //nolint:errorlint // err is nil when only the status is wrong
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.placed = append(c.placed, harness.Request{SentAt: sent, Latency: time.Since(sent), CustomerID: customer, Amount: 1_000,
		Status: status, OrderID: o.ID, Outcome: harness.Accepted, Attempts: 1})
	return o.ID, nil
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// writeStrategies rewrites build/e2e/strategies.json with every row so far.
func writeStrategies(t *testing.T, rows []*harness.StrategyRow) {
	t.Helper()
	data, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(buildDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(buildDir, "strategies.json"), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
