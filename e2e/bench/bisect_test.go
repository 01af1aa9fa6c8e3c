package main

import (
	"context"
	"errors"
	"testing"
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
