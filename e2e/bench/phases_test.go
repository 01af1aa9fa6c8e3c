package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// runFakePhases runs phases that store a marker in r.Consumer.Events (through
// set) and then behave as told, and returns the report and runPhases' answer.
func runFakePhases(t *testing.T, cases []phaseCase, before func(context.Context) error) (*Report, bool) {
	t.Helper()
	release := make(chan struct{}) // lets the hung phases end with the test
	t.Cleanup(func() { close(release) })
	var ps []phase
	for _, c := range cases {
		ps = append(ps, phase{name: c.name, timeout: 50 * time.Millisecond, run: func(ctx context.Context, r *Report) error {
			c.set(r)
			switch c.behave {
			case "fail":
				return errors.New("boom")
			case "panic":
				panic("kaboom")
			case "hang": // ignores its context
				<-release
			case "overrun": // stops at its deadline, but says nothing went wrong
				<-ctx.Done()
			}
			return nil
		}})
	}
	r := &Report{}
	ok := runPhases(r, ps, func(name string) bool { return name != "skipped" }, 50*time.Millisecond, before)
	return r, ok
}

type phaseCase struct {
	name, behave string
	set          func(*Report) // writes the phase's result
	// want
	status, err string
	kept        func(*Report) bool // whether set's result is in the report
}

func TestRunPhases(t *testing.T) {
	cases := []phaseCase{
		{name: "baselines", behave: "ok", set: func(r *Report) { r.Baselines.CommitRate = 1 },
			status: statusOK, kept: func(r *Report) bool { return r.Baselines.CommitRate == 1 }},
		{name: "saga", behave: "fail", set: func(r *Report) { r.Throughput.MaxSustained = 2 },
			status: statusFailed, err: "boom", kept: func(r *Report) bool { return r.Throughput.MaxSustained == 2 }},
		{name: "latency", behave: "panic", set: func(r *Report) { r.Latency.Rate = 3 },
			status: statusFailed, err: "panic: kaboom", kept: func(r *Report) bool { return r.Latency.Rate == 3 }},
		{name: "drain", behave: "hang", set: func(r *Report) { r.Drain.Events = 4 },
			status: statusFailed, err: "did not return within its deadline", kept: func(r *Report) bool { return r.Drain.Events == 4 }},
		{name: "outage", behave: "overrun", set: func(r *Report) { r.Outage.Rate = 5 },
			status: statusFailed, err: "returned after its deadline", kept: func(r *Report) bool { return r.Outage.Rate == 5 }},
		{name: "skipped", behave: "ok", set: func(r *Report) { r.Consumer.BareRate = 6 },
			status: statusSkipped, kept: func(r *Report) bool { return r.Consumer.BareRate == 6 }},
		{name: "consumer", behave: "ok", set: func(r *Report) { r.Consumer.StackRate = 7 },
			status: statusOK, kept: func(r *Report) bool { return r.Consumer.StackRate == 7 }},
	}
	r, ok := runFakePhases(t, cases, nil)
	if ok {
		t.Error("runPhases reported success with failed phases")
	}
	if len(r.Phases) != len(cases) {
		t.Fatalf("report has %d phases, want %d: %+v", len(r.Phases), len(cases), r.Phases)
	}
	for i, c := range cases {
		got := r.Phases[i]
		if got.Name != c.name || got.Status != c.status {
			t.Errorf("phase %d: got %s %s, want %s %s", i, got.Name, got.Status, c.name, c.status)
		}
		if (c.err == "") != (got.Error == "") || !strings.Contains(got.Error, c.err) {
			t.Errorf("phase %s: error %q, want one containing %q", c.name, got.Error, c.err)
		}
		if kept := c.kept(r); kept != (c.status == statusOK) {
			t.Errorf("phase %s (%s): result kept = %v", c.name, c.status, kept)
		}
	}
}

func TestRunPhasesBeforeHook(t *testing.T) {
	var calls int
	before := func(context.Context) error {
		calls++
		if calls == 1 {
			return errors.New("servers down")
		}
		return nil
	}
	cases := []phaseCase{
		{name: "baselines", behave: "ok", set: func(r *Report) { r.Baselines.CommitRate = 1 }},
		{name: "skipped", behave: "ok", set: func(*Report) {}},
		{name: "saga", behave: "ok", set: func(r *Report) { r.Throughput.MaxSustained = 2 }},
	}
	r, ok := runFakePhases(t, cases, before)
	if ok || calls != 2 {
		t.Fatalf("ok = %v, before called %d times; want false, 2", ok, calls)
	}
	if p := r.Phases[0]; p.Status != statusFailed || !strings.Contains(p.Error, "servers down") || r.Baselines.CommitRate != 0 {
		t.Errorf("phase after a failing before hook: %+v, commit rate %v", p, r.Baselines.CommitRate)
	}
	if p := r.Phases[2]; p.Status != statusOK || r.Throughput.MaxSustained != 2 {
		t.Errorf("next phase: %+v, max sustained %v", p, r.Throughput.MaxSustained)
	}
}

func TestGoalsOfFailedPhasesAreNotMet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		phases []PhaseResult
		goal   string
		met    bool
		note   string
	}{
		{"outage ok", []PhaseResult{{Name: "outage", Status: statusOK}}, goalOutageDrained, true, ""},
		{"outage failed", []PhaseResult{{Name: "outage", Status: statusFailed, Error: "x"}}, goalOutageDrained, false, "phase outage failed"},
		{"outage skipped", []PhaseResult{{Name: "outage", Status: statusSkipped}}, goalOutageDrained, false, "phase outage skipped"},
		{"outage absent", nil, goalOutageDrained, false, "phase outage did not run"},
		{"drain ok, saga failed", []PhaseResult{{Name: "saga", Status: statusFailed}, {Name: "drain", Status: statusOK}},
			goalDrainVsSaga, false, "phase saga failed"},
		{"drain and saga ok", []PhaseResult{{Name: "saga", Status: statusOK}, {Name: "drain", Status: statusOK}},
			goalDrainVsSaga, true, ""},
		{"forwarder failed", []PhaseResult{{Name: "forwarder", Status: statusFailed}}, goalForwarderAlone, false, "phase forwarder failed"},
		{"consumer failed", []PhaseResult{{Name: "consumer", Status: statusFailed}}, goalConsumerVsBare, false, "phase consumer failed"},
		{"relays skipped", []PhaseResult{{Name: "relays", Status: statusSkipped}}, goalRelayVsStock, false, "phase relays skipped"},
		{"audit ok", []PhaseResult{{Name: "audit", Status: statusOK}}, goalSagaAuditOnVsOff, true, ""},
		// the audit phase measures both modes itself: the saga phase's result is only its bracket
		{"audit ok, saga failed", []PhaseResult{{Name: "saga", Status: statusFailed}, {Name: "audit", Status: statusOK}},
			goalSagaAuditOnVsOff, true, ""},
		{"audit failed", []PhaseResult{{Name: "saga", Status: statusOK}, {Name: "audit", Status: statusFailed, Error: "x"}},
			goalSagaAuditOnVsOff, false, "phase audit failed"},
		{"audit skipped", []PhaseResult{{Name: "audit", Status: statusSkipped}}, goalSagaAuditOnVsOff, false, "phase audit skipped"},
		{"audit absent", []PhaseResult{{Name: "saga", Status: statusOK}}, goalSagaAuditOnVsOff, false, "phase audit did not run"},
		{"stock ok", []PhaseResult{{Name: "saga", Status: statusOK}, {Name: "stock", Status: statusOK}}, goalSagaVsStock, false, ""},
		{"stock failed", []PhaseResult{{Name: "saga", Status: statusOK}, {Name: "stock", Status: statusFailed, Error: "x"}},
			goalSagaVsStock, false, "phase stock failed"},
		{"stock ok, saga failed", []PhaseResult{{Name: "saga", Status: statusFailed}, {Name: "stock", Status: statusOK}},
			goalSagaVsStock, false, "phase saga failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// all zeros: "drained after 0 s" would be met if nobody looked at the phase
			r := &Report{K: K, Phases: tt.phases, Throughput: Throughput{MaxSustained: 100}, Drain: Drain{Rate: 300, SteadyRate: 400},
				Audit: Audit{RateOn: 95, RateOff: 100}}
			r.evaluate()
			g := findGoal(t, r, tt.goal)
			if g.Met != tt.met || !strings.Contains(g.Note, tt.note) || (tt.note == "") != (g.Note == "") {
				t.Errorf("goal %q: met %v, note %q; want met %v, note containing %q", g.Name, g.Met, g.Note, tt.met, tt.note)
			}
			if g.Note != "" && g.Value != 0 {
				t.Errorf("goal %q not measured but has value %v", g.Name, g.Value)
			}
		})
	}
}

// TestGoals: report.json's goals are exactly the issues' names, in order,
// with their targets, and each is judged against its target.
func TestGoals(t *testing.T) {
	t.Parallel()
	var phases []PhaseResult
	for _, p := range []string{"baselines", "forwarder", "saga", "latency", "drain", "outage", "consumer", "relays", "audit", "stock"} {
		phases = append(phases, PhaseResult{Name: p, Status: statusOK})
	}
	r := &Report{K: K, Phases: phases,
		Baselines:  Baselines{CommitRate: 2500},                          // R_c/K = 500
		Throughput: Throughput{MaxSustained: 300},                        // 0.6: met
		Forwarder:  Forwarder{Rate: 4999},                                // not met
		Drain:      Drain{Rate: 700, SteadyRate: 900, ReconnectSec: 1.6}, // steady 3.0: met; reconnect: not met
		Latency:    Latency{ServerP50: 15.1, ServerP99: 100},             // not met, met
		Outage:     Outage{DrainedAfterSec: 20, NormalAfterSec: -1},
		Consumer:   Consumer{StackRate: 79, BareRate: 100}, // 0.79: not met
		Relays: Relays{Lanes: []RelayLane{{Name: laneOnceflow, EventsPerS: 5000, P99Ms: 30}, {Name: laneStock, EventsPerS: 1000},
			{Name: laneDebezium, EventsPerS: 4000, P99Ms: 20}}}, // 5: met; 1.25: not met; 1.5: not met
		Audit: Audit{RateOn: 270, RateOff: 300},                 // 0.9: met
		Stock: Stock{Throughput: Throughput{MaxSustained: 201}}, // 1.49: not met
	}
	r.evaluate()
	want := []Goal{
		{Name: "saga_vs_commit_bound", Target: ">= 0.6 (stretch 0.8)", Value: 0.6, Met: true},
		{Name: "forwarder_alone_events_per_s", Target: ">= 5000", Value: 4999},
		{Name: "drain_vs_saga_rate", Target: ">= 3", Value: 3, Met: true},
		{Name: "latency_p50_ms", Target: "<= 15", Value: 15.1},
		{Name: "latency_p99_ms", Target: "<= 100", Value: 100, Met: true},
		{Name: "outage_backlog_drained_s", Target: "<= 20", Value: 20, Met: true},
		{Name: "outage_latency_normal_s", Target: "<= 30", Value: -1, Note: "-1: not back to normal before the load ended"},
		{Name: "consumer_stack_vs_bare", Target: ">= 0.8", Value: 0.79},
		{Name: "relay_vs_stock_events_per_s", Target: ">= 5", Value: 5, Met: true},
		{Name: "relay_vs_debezium_events_per_s", Target: ">= 1.5", Value: 1.25},
		{Name: "relay_p99_vs_debezium", Target: "<= 1", Value: 1.5},
		{Name: "saga_audit_on_vs_off", Target: ">= 0.9", Value: 0.9, Met: true},
		{Name: "drain_reconnect_s", Target: "<= 1.5", Value: 1.6},
		{Name: "saga_vs_stock_watermill", Target: ">= 1.5", Value: 1.49},
	}
	if len(r.Goals) != len(want) {
		t.Fatalf("%d goals, want %d: %+v", len(r.Goals), len(want), r.Goals)
	}
	for i, w := range want {
		if r.Goals[i] != w {
			t.Errorf("goal %d = %+v, want %+v", i, r.Goals[i], w)
		}
	}
}

func findGoal(t *testing.T, r *Report, name string) Goal {
	t.Helper()
	for _, g := range r.Goals {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no goal %q", name)
	return Goal{}
}

func TestDiffIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		want, got      []string
		missing, extra int
	}{
		{"exact", []string{"a", "b", "c"}, []string{"c", "a", "b"}, 0, 0},
		{"missing", []string{"a", "b", "c"}, []string{"a"}, 2, 0},
		{"duplicate", []string{"a", "b"}, []string{"a", "b", "b"}, 0, 1},
		{"unknown", []string{"a"}, []string{"a", "z"}, 0, 1},
		{"duplicate hides a missing one", []string{"a", "b"}, []string{"a", "a"}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, e := diffIDs(tt.want, tt.got); m != tt.missing || e != tt.extra {
				t.Errorf("diffIDs = %d missing, %d extra; want %d, %d", m, e, tt.missing, tt.extra)
			}
		})
	}
}
