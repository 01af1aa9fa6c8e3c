// The saga phases: the max sustained rate by bisection (throughput), and the
// latency at a fraction of it.

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/onceflow/onceflow/e2e/harness"
)

// newStack makes, starts, seeds and warms up a stack on the servers on, with
// env (then -service-env) added to both services' settings; on error it
// closes what it made.
func newStack(ctx context.Context, on *harness.Infra, orderBin, paymentBin, name string, env ...string) (*harness.Stack, error) {
	// The profiler's addresses, for the profile phase.
	orderDebug, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	paymentDebug, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	s, err := harness.NewStack(on, harness.StackConfig{
		Name: name + "_" + strings.ToLower(watermill.NewShortUUID()[:6]), OrderBin: orderBin, PaymentBin: paymentBin,
		LogDir: filepath.Join(outDir, "logs"),
		// The auditor as in production (the harness paces it for the tests).
		OrderEnv:   slices.Concat([]string{"LOG_LEVEL=warn", "ORDER_PAYMENT_TIMEOUT=10m", "ORDER_DEBUG_ADDR=" + orderDebug}, auditorEnv(true), env, extraEnv()),
		PaymentEnv: slices.Concat([]string{"LOG_LEVEL=warn", "PAYMENT_DEBUG_ADDR=" + paymentDebug}, auditorEnv(true), env, extraEnv()),
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
	for i := range *repeats {
		rp, err := searchOnce(ctx, s, fmt.Sprintf("repeat %d", i+1), lo, hi)
		t.Repeats = append(t.Repeats, rp)
		if err != nil {
			return CPU{}, err
		}
		if i == 0 {
			lo, hi = narrowBracket(rp.Result)
		}
	}
	var cpu CPU
	t.MaxSustained, cpu = medianMax(t.Repeats)
	return cpu, ctx.Err()
}

// searchOnce is one search for the max sustained rate on s from [lo, hi],
// each step followed by draining; label names it in the log. A search in
// which no step passed is an error.
func searchOnce(ctx context.Context, s *harness.Stack, label string, lo, hi float64) (Repeat, error) {
	rp := Repeat{BracketLo: lo, BracketHi: hi}
	res, err := search(ctx, lo, hi, func(ctx context.Context, rate float64) (bool, error) {
		st, err := runStep(ctx, s, rate, *stepDur)
		if err != nil {
			return false, err
		}
		say("  %s: %4.0f/s offered: %6.1f/s completed, p99 %7.1f ms, backlog %d, passed %v",
			label, rate, st.Completed, st.P99Ms, st.Backlog, st.Passed)
		rp.Steps = append(rp.Steps, st)
		waitDrained(ctx, s, 60*time.Second)
		return st.Passed, ctx.Err()
	})
	rp.Result = res
	if err != nil {
		return rp, err
	}
	if res == 0 {
		return rp, fmt.Errorf("%s: no step passed (lowest tried %.0f/s)", label, rp.Steps[len(rp.Steps)-1].Rate)
	}
	say("  %s: max sustained %.0f/s", label, res)
	return rp, nil
}

// medianMax is the median of the repeats' results, and the CPU split at it
// (cpuAtMax).
func medianMax(rs []Repeat) (float64, CPU) {
	results := make([]float64, len(rs))
	for i, rp := range rs {
		results[i] = rp.Result
	}
	m := median(results)
	return m, cpuAtMax(rs, m)
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
