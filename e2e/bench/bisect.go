package main

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// Pass rule of a load step.
const (
	// minCompletedShare: the orders accepted in the step and terminal by its end
	// (+ settle) must be at least this share of the offered rate × duration.
	minCompletedShare = 0.98
	// maxStepP99Ms bounds the server-side p99 (created_at → updated_at) of the
	// step's orders; an order not terminal counts with its age at the judgement.
	maxStepP99Ms = 150.0
)

// stepPasses is the pass rule of a step: completions per second ≥ 0.98 × offered
// and server-side p99 ≤ 150 ms. A step with nothing offered does not pass.
func stepPasses(offered, completedPerS, p99Ms float64) bool {
	return offered > 0 && completedPerS >= minCompletedShare*offered && p99Ms <= maxStepP99Ms
}

// resolved reports whether the bracket [lo, hi] is narrow enough to stop: at most
// 10% of lo or 25 orders/s wide.
func resolved(lo, hi float64) bool { return hi-lo <= max(0.1*lo, 25) }

// maxSteps bounds the steps of one search, whatever the oracle answers.
const maxSteps = 16

// search finds the highest rate that passes, starting from the bracket [lo, hi]
// (lo > 0, hi > lo), with try running one step at a rate and saying whether it
// passed. It first makes the bracket true: while lo fails it halves lo (hi
// becomes the failed rate); while hi passes it moves the bracket up, to twice
// its width above hi (from [50, 100] that is doubling: [100, 200], [200, 400]). Then it bisects until resolved. It returns the highest rate that passed
// (0 if none did, down to lo/8 of the start), and try's first error. Rates are
// rounded to whole orders/s. Each try is a full step, so the number of steps is
// the cost: repeat 1 starts from a wide bracket, the later repeats from a narrow
// one around repeat 1's result.
func search(ctx context.Context, lo, hi float64, try func(context.Context, float64) (bool, error)) (float64, error) {
	if lo <= 0 || hi <= lo {
		return 0, fmt.Errorf("search: bad bracket [%v, %v]", lo, hi)
	}
	steps := 0
	step := func(rate float64) (bool, error) {
		steps++
		if steps > maxSteps {
			return false, fmt.Errorf("search: no result after %d steps", maxSteps)
		}
		return try(ctx, rate)
	}
	floor := lo / 8
	lo, hi = math.Round(lo), math.Round(hi)
	hiFailed := false // hi is a rate that already failed: no need to try it again
	for {
		ok, err := step(lo)
		if err != nil {
			return 0, err
		}
		if ok {
			break
		}
		hi, lo, hiFailed = lo, math.Round(lo/2), true
		if lo < floor || lo < 1 {
			return 0, nil
		}
	}
	for !hiFailed {
		ok, err := step(hi)
		if err != nil {
			return lo, err
		}
		if !ok {
			break
		}
		lo, hi = hi, hi+2*(hi-lo) // [50, 100] → [100, 200] → [200, 400]: doubling
	}
	for !resolved(lo, hi) {
		mid := math.Round((lo + hi) / 2)
		ok, err := step(mid)
		if err != nil {
			return lo, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// median is the middle value of xs (the mean of the two middle ones for an
// even count), or 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// narrowBracket is the bracket the repeats after the first start from: ±12.5%
// around the first repeat's result (bisected once more to 10%/25 per s).
func narrowBracket(first float64) (lo, hi float64) {
	return math.Round(first * 0.875), math.Round(max(first*1.125, first*0.875+1))
}
