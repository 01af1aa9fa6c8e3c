package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
)

// Phase statuses, as report.json spells them.
const (
	statusOK      = "ok"
	statusFailed  = "failed"
	statusSkipped = "skipped"
)

// PhaseResult is one phase's entry in report.json: how it ended and how long it
// took. Status is "ok", "failed" (Error says why: its error, a panic, or its
// deadline) or "skipped" (not selected with -phases).
type PhaseResult struct {
	Name    string  `json:"name"`
	Status  string  `json:"status"`
	Error   string  `json:"error,omitempty"`
	TookSec float64 `json:"took_s"`
}

// phase is one measurement of the bench.
type phase struct {
	name string
	// timeout is the phase's deadline: its context ends then.
	timeout time.Duration
	// run measures and writes its results into r, a copy of the report that is
	// kept only if run succeeds in time. It must return soon after ctx ends.
	run func(ctx context.Context, r *Report) error
}

// runPhases runs, in order, each phase of ps that selected accepts, through
// runPhase, and appends every phase of ps to r.Phases: "ok" (its results are
// now in r), "failed" (its results are dropped; the next phases still run) or
// "skipped". before, if not nil, runs at the start of each selected phase,
// within its deadline; its error fails the phase. runPhases reports whether
// every selected phase succeeded.
func runPhases(r *Report, ps []phase, selected func(string) bool, grace time.Duration, before func(context.Context) error) bool {
	allOK := true
	for _, p := range ps {
		if !selected(p.name) {
			r.Phases = append(r.Phases, PhaseResult{Name: p.name, Status: statusSkipped})
			continue
		}
		say("phase %s (deadline %s)", p.name, p.timeout)
		start := time.Now()
		done, err := runPhase(*r, p, grace, before)
		res := PhaseResult{Name: p.name, Status: statusOK, TookSec: round(time.Since(start).Seconds(), 1)}
		if err != nil {
			allOK = false
			res.Status, res.Error = statusFailed, err.Error()
			say("phase %s failed after %.0f s: %v", p.name, res.TookSec, err)
		} else {
			*r = done
		}
		r.Phases = append(r.Phases, res)
	}
	return allOK
}

// runPhase runs before and p.run in a goroutine of their own, on r (a copy),
// with a context that ends after p.timeout, and returns r with p's results. It
// fails if run returns an error, panics (the stack goes to stderr), or returns
// after its deadline. If run has not returned grace after its deadline,
// runPhase fails without waiting any longer: the goroutine is abandoned with
// its copy, so whatever it does later cannot reach the report.
func runPhase(r Report, p phase, grace time.Duration, before func(context.Context) error) (Report, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	done := make(chan error, 1) // buffered: an abandoned phase can still send, and end
	go func() {
		defer func() {
			if v := recover(); v != nil {
				say("phase %s panicked: %v\n%s", p.name, v, debug.Stack())
				done <- fmt.Errorf("panic: %v", v)
			}
		}()
		if before != nil {
			if err := before(ctx); err != nil {
				done <- fmt.Errorf("before the phase: %w", err)
				return
			}
		}
		done <- p.run(ctx, &r)
	}()
	hang := time.NewTimer(p.timeout + grace)
	defer hang.Stop()
	select {
	case err := <-done:
		switch {
		case ctx.Err() != nil && err != nil:
			return Report{}, fmt.Errorf("deadline of %s exceeded: %w", p.timeout, err)
		case ctx.Err() != nil:
			return Report{}, fmt.Errorf("returned after its deadline of %s", p.timeout)
		case err != nil:
			return Report{}, err
		}
		return r, nil
	case <-hang.C:
		return Report{}, fmt.Errorf("did not return within its deadline of %s plus %s; abandoned", p.timeout, grace)
	}
}
