package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestSearch: against an oracle where a step passes iff rate <= x, search
// returns a passing rate within the resolution below x (never above it), from a
// wide bracket and from a narrow one on either side of x.
func TestSearch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		x        float64
		lo, hi   float64
		maxSteps int
	}{
		{"wide, high max", 437, 50, 100, 9},
		{"wide, max in first bracket", 73, 50, 100, 4},
		{"wide, below the start", 20, 50, 100, 4},
		{"narrow around it", 250, 219, 281, 4},
		{"narrow, max above it", 400, 219, 281, 5},
		{"narrow, max below it", 150, 219, 281, 5}, // a rate that failed is not tried again
		{"large", 3000, 50, 100, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tried []float64
			got, err := search(context.Background(), tc.lo, tc.hi, func(_ context.Context, rate float64) (bool, error) {
				tried = append(tried, rate)
				return rate <= tc.x, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got > tc.x || !resolved(got, tc.x) {
				t.Errorf("search = %v for max %v (tried %v); want within max(10%%, 25/s) below it", got, tc.x, tried)
			}
			if len(tried) > tc.maxSteps {
				t.Errorf("%d steps (%v), want at most %d", len(tried), tried, tc.maxSteps)
			}
		})
	}
}

func TestSearchNothingPasses(t *testing.T) {
	t.Parallel()
	got, err := search(context.Background(), 50, 100, func(context.Context, float64) (bool, error) { return false, nil })
	if err != nil || got != 0 {
		t.Errorf("search = %v, %v; want 0, nil", got, err)
	}
	boom := errors.New("boom")
	if _, err := search(context.Background(), 50, 100, func(context.Context, float64) (bool, error) { return true, boom }); !errors.Is(err, boom) {
		t.Errorf("search error = %v, want boom", err)
	}
}

func TestMedianOfRepeats(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{250, 200, 231}, 231},
		{[]float64{200}, 200},
		{[]float64{300, 100, 200, 400}, 250},
		{nil, 0},
	} {
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
	// the median of three searches against noisy oracles is the middle one
	var results []float64
	for _, x := range []float64{260, 180, 240} {
		r, err := search(context.Background(), 50, 100, func(_ context.Context, rate float64) (bool, error) { return rate <= x, nil })
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	if m := median(results); m > 240 || !resolved(m, 240) {
		t.Errorf("median of %v = %v, want the result for 240", results, m)
	}
}

// TestStepPasses: the pass rule is completions >= 0.98 x offered and p99 <= 150 ms.
func TestStepPasses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		offered, completed, p99 float64
		want                    bool
	}{
		{200, 200, 80, true},
		{200, 196, 150, true},   // both on the limit
		{200, 195.9, 80, false}, // 0.9795 x offered
		{200, 200, 150.1, false},
		{200, 210, 20, true}, // a settle that catches earlier orders
		{0, 0, 0, false},
	} {
		if got := stepPasses(tc.offered, tc.completed, tc.p99); got != tc.want {
			t.Errorf("stepPasses(%v offered, %v completed, p99 %v) = %v, want %v", tc.offered, tc.completed, tc.p99, got, tc.want)
		}
	}
}

// TestJudgeStep: 10/s offered for 10 s (100 orders). Completions count only
// terminal orders; a PENDING one counts in the p99 with its age, so two of 100
// pending (98% completed) fail on the p99 although the completions pass.
func TestJudgeStep(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	now := t0.Add(20 * time.Second)
	build := func(n, pending int, latency time.Duration) ([]string, map[string][2]time.Time, map[string]string) {
		var ids []string
		times, status := map[string][2]time.Time{}, map[string]string{}
		for i := range n {
			id := fmt.Sprint("o", i)
			ids = append(ids, id)
			created := t0.Add(time.Duration(i) * 100 * time.Millisecond)
			times[id], status[id] = [2]time.Time{created, created.Add(latency)}, "CONFIRMED"
			if i < pending {
				times[id], status[id] = [2]time.Time{created, created}, "PENDING"
			}
		}
		return ids, times, status
	}
	for _, tc := range []struct {
		name           string
		n, pending     int
		latency        time.Duration
		completed, p99 float64
		backlog        int
		passed         bool
	}{
		{"all done fast", 100, 0, 40 * time.Millisecond, 10, 40, 0, true},
		{"one pending", 100, 1, 40 * time.Millisecond, 9.9, 40, 1, true},
		{"two pending: p99 is the age of the younger", 100, 2, 40 * time.Millisecond, 9.8, 19900, 2, false},
		{"all done, slow", 100, 0, 151 * time.Millisecond, 10, 151, 0, false},
		{"intake short: 97 of 100 accepted", 97, 0, 40 * time.Millisecond, 9.7, 40, 0, false},
	} {
		ids, times, status := build(tc.n, tc.pending, tc.latency)
		st := judgeStep(10, 10*time.Second, ids, times, status, now)
		if st.Completed != tc.completed || st.P99Ms != tc.p99 || st.Backlog != tc.backlog || st.Passed != tc.passed || st.Accepted != tc.n {
			t.Errorf("%s: %+v; want completed %v/s, p99 %v ms, backlog %d, passed %v", tc.name, st, tc.completed, tc.p99, tc.backlog, tc.passed)
		}
	}
}
