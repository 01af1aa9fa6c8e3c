package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Report is build/bench/report.json. Phases says how each phase ended; the
// section of a phase that did not end "ok" holds zeros (or, for Throughput, the
// -max-rate default), and the goals that depend on it are not met.
type Report struct {
	Date    string        `json:"date"`
	Machine Machine       `json:"machine"`
	TookSec float64       `json:"took_s"`
	Phases  []PhaseResult `json:"phases"`
	// K is the number of durable commits on an order's critical path.
	K          int        `json:"k_commits_per_order"`
	Baselines  Baselines  `json:"baselines"`
	Throughput Throughput `json:"throughput"`
	Latency    Latency    `json:"latency"`
	Drain      Drain      `json:"drain"`
	Outage     Outage     `json:"outage"`
	CPU        CPU        `json:"cpu"`
	Forwarder  Forwarder  `json:"forwarder"`
	Consumer   Consumer   `json:"consumer"`
	Galera     Galera     `json:"galera"`
	Audit      Audit      `json:"audit"`
	Stock      Stock      `json:"stock"`
	Relays     Relays     `json:"relays"`
	// Profiles is empty unless the profile phase ran.
	Profiles *Profiles `json:"profiles,omitempty"`
	Goals    []Goal    `json:"goals"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	Kernel    string `json:"kernel"`
}

func machine() Machine {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Kernel: strings.TrimSpace(string(kernel))}
}

// Baselines are the raw rates of the same servers, measured in the same run.
type Baselines struct {
	// CommitRate (R_c): durable commits/s of an order-shaped transaction (order row
	// + outbox row) at CommitConcurrency connections.
	CommitRate        float64 `json:"commit_rate_per_s"`
	CommitConcurrency int     `json:"commit_concurrency"`
	// ProduceSync and ProduceAsync (P): messages/s with acks=all, idempotent; one
	// at a time, and batched.
	ProduceSync  float64 `json:"produce_sync_per_s"`
	ProduceAsync float64 `json:"produce_async_per_s"`
	// KafkaP99Ms (L_k): produce→consume p99 at 100 messages/s.
	KafkaP99Ms float64 `json:"kafka_p99_ms"`
}

// Step is one load step of the bisection: Rate orders/s offered for StepSec.
// It passes (stepPasses) if Completed ≥ 0.98 × Rate and P99Ms ≤ 150.
type Step struct {
	Rate     float64 `json:"offered_per_s"`
	StepSec  float64 `json:"step_s"`
	Accepted int     `json:"accepted"`
	// Completed is the step's accepted orders that were terminal by the end of
	// the step + settle, per second of the step.
	Completed float64 `json:"completed_per_s"`
	// P99Ms is the server-side (created_at → updated_at) p99 of the step's
	// accepted orders; one not terminal counts with its age at the judgement.
	P99Ms   float64 `json:"p99_ms"`
	Backlog int     `json:"backlog"`
	Passed  bool    `json:"passed"`

	completed int // orders completed (Completed × StepSec, unrounded)
	cpu       CPU // CPU split over the step, for the report's cpu section
}

// Repeat is one search for the max sustained rate: its starting bracket, the
// steps it ran, and the highest rate that passed.
type Repeat struct {
	BracketLo float64 `json:"bracket_lo_per_s"`
	BracketHi float64 `json:"bracket_hi_per_s"`
	Steps     []Step  `json:"steps"`
	Result    float64 `json:"max_passed_per_s"`
}

// Throughput is the saga's highest sustained rate: the median of the repeats'
// results.
type Throughput struct {
	Repeats      []Repeat `json:"repeats"`
	MaxSustained float64  `json:"max_sustained_per_s"`
	// RatioToCommitBound is MaxSustained / (R_c / K).
	RatioToCommitBound float64 `json:"ratio_to_commit_bound"`
}

// CPU is the CPU time per completed order of each process, over the passing
// step at the highest rate of the median repeat (the whole step + settle).
// AvailableMs is what the machine offers per order in that window (window ×
// CPUs / orders): TotalMs close to it means the cores were saturated.
type CPU struct {
	Rate        float64            `json:"offered_per_s"`
	WindowSec   float64            `json:"window_s"`
	Orders      int                `json:"orders"`
	PerOrderMs  map[string]float64 `json:"per_order_ms"`
	TotalMs     float64            `json:"total_ms"`
	AvailableMs float64            `json:"machine_cpu_ms_available_per_order"`
}

// Latency is POST→terminal at half the maximum rate.
type Latency struct {
	Rate       float64 `json:"rate_per_s"`
	Orders     int     `json:"orders"`
	ServerP50  float64 `json:"server_p50_ms"`
	ServerP99  float64 `json:"server_p99_ms"`
	ServerP999 float64 `json:"server_p999_ms"`
	ClientP50  float64 `json:"client_p50_ms"`
	ClientP99  float64 `json:"client_p99_ms"`
	ClientP999 float64 `json:"client_p999_ms"`
	PostP99    float64 `json:"post_p99_ms"`
}

// Drain is the forwarder emptying a preloaded outbox.
type Drain struct {
	Events  int     `json:"events"`
	Seconds float64 `json:"seconds"`
	// Rate is Events / Seconds, from Kafka accepting connections to an empty outbox.
	Rate float64 `json:"rate_per_s"`
	// ReconnectSec is the part of Seconds before the first row was forwarded (the
	// forwarder finding the restarted broker); SteadyRate excludes it.
	ReconnectSec float64 `json:"reconnect_s"`
	SteadyRate   float64 `json:"steady_rate_per_s"`
	// Rate against the raw produce baselines (for reference).
	VsProduceAsync float64 `json:"vs_produce_async"`
	VsProduceSync  float64 `json:"vs_produce_sync"`
}

// Forwarder is the services' forwarder alone emptying a preloaded outbox, with
// nothing else running and nothing consuming the topic.
type Forwarder struct {
	Events  int     `json:"events"`
	Seconds float64 `json:"seconds"`
	// Rate is Events / Seconds, from the forwarder's start to an empty outbox.
	Rate float64 `json:"events_per_s"`
	// FirstSec is the part of Seconds before the first row was gone (connecting).
	FirstSec float64 `json:"first_forwarded_s"`
}

// Outage is a 60 s Kafka outage under load.
type Outage struct {
	Rate            float64 `json:"rate_per_s"`
	OutageSec       float64 `json:"outage_s"`
	IntakeErrors    int     `json:"intake_errors"`
	PostP99DuringMs float64 `json:"post_p99_during_ms"`
	BaselineP99Ms   float64 `json:"baseline_p99_ms"`
	DrainedAfterSec float64 `json:"drained_after_s"`
	// NormalAfterSec is -1 when latency was not back to normal before the load ended.
	NormalAfterSec float64 `json:"latency_normal_after_s"`
}

// Consumer compares the full consumer stack with a bare loop: alternating runs
// (bare, stack, bare, …), each on its own exact preload; the rates are the
// medians of each mode's runs.
type Consumer struct {
	Events    int           `json:"events"`
	Runs      []ConsumerRun `json:"runs"`
	StackRate float64       `json:"stack_per_s"`
	BareRate  float64       `json:"bare_per_s"`
	Ratio     float64       `json:"ratio"`
}

// ConsumerRun is one BenchmarkConsumer run.
type ConsumerRun struct {
	Mode string  `json:"mode"`
	Rate float64 `json:"events_per_s"`
}

// Goal is one of the project's targets and where this run landed. A goal
// whose phases did not all end "ok" is not met, has value 0, and Note says
// which phase failed or did not run.
type Goal struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Met    bool    `json:"met"`
	Note   string  `json:"note,omitempty"`
}

// Goal names, as report.json spells them (issue 15).
const (
	goalSagaVsCommitBound  = "saga_vs_commit_bound"
	goalForwarderAlone     = "forwarder_alone_events_per_s"
	goalDrainVsSaga        = "drain_vs_saga_rate"
	goalLatencyP50         = "latency_p50_ms"
	goalLatencyP99         = "latency_p99_ms"
	goalOutageDrained      = "outage_backlog_drained_s"
	goalOutageNormal       = "outage_latency_normal_s"
	goalConsumerVsBare     = "consumer_stack_vs_bare"
	goalRelayVsStock       = "relay_vs_stock_events_per_s"
	goalRelayVsDebezium    = "relay_vs_debezium_events_per_s"
	goalRelayP99VsDebezium = "relay_p99_vs_debezium"
	goalSagaAuditOnVsOff   = "saga_audit_on_vs_off"
	goalDrainReconnect     = "drain_reconnect_s"
	goalSagaVsStock        = "saga_vs_stock_watermill"
)

// evaluate computes the ratios and the goals from the sections of the phases
// that ended "ok" (see Goal).
func (r *Report) evaluate() {
	bound := ratio(r.Baselines.CommitRate, float64(r.K), 0)
	r.Throughput.RatioToCommitBound = ratio(r.Throughput.MaxSustained, bound, 2)
	r.Consumer.Ratio = ratio(r.Consumer.StackRate, r.Consumer.BareRate, 2)
	r.Galera.VsSingle = ratio(r.Galera.Throughput.MaxSustained, r.Throughput.MaxSustained, 2)
	r.Audit.RateOnVsOff = ratio(r.Audit.RateOn, r.Audit.RateOff, 2)
	r.Stock.SagaVsStock = ratio(r.Throughput.MaxSustained, r.Stock.Throughput.MaxSustained, 2)
	r.Drain.VsProduceAsync = ratio(r.Drain.Rate, r.Baselines.ProduceAsync, 3)
	r.Drain.VsProduceSync = ratio(r.Drain.Rate, r.Baselines.ProduceSync, 2)
	// The drain's rate once the first row is out: the reconnect is a goal of
	// its own.
	drainToSaga := ratio(r.Drain.SteadyRate, r.Throughput.MaxSustained, 2)
	relayVsStock := ratio(r.Relays.lane(laneOnceflow).EventsPerS, r.Relays.lane(laneStock).EventsPerS, 2)
	relayVsDebezium := ratio(r.Relays.lane(laneOnceflow).EventsPerS, r.Relays.lane(laneDebezium).EventsPerS, 2)
	relayP99VsDebezium := ratio(r.Relays.lane(laneOnceflow).P99Ms, r.Relays.lane(laneDebezium).P99Ms, 2)
	goal := func(name string, value float64, target string, met bool, phases ...string) Goal {
		for _, p := range phases {
			if st, _ := r.phase(p); st != statusOK {
				return Goal{Name: name, Target: target, Note: "not measured: phase " + p + " " + st}
			}
		}
		return Goal{Name: name, Value: value, Target: target, Met: met}
	}
	ratioToBound := r.Throughput.RatioToCommitBound
	o := r.Outage
	r.Goals = []Goal{
		goal(goalSagaVsCommitBound, ratioToBound, ">= 0.6 (stretch 0.8)", ratioToBound >= 0.6, "baselines", "saga"),
		goal(goalForwarderAlone, r.Forwarder.Rate, ">= 5000", r.Forwarder.Rate >= 5000, "forwarder"),
		goal(goalDrainVsSaga, drainToSaga, ">= 3", drainToSaga >= 3, "drain", "saga"),
		goal(goalLatencyP50, r.Latency.ServerP50, "<= 15", r.Latency.ServerP50 <= 15, "latency"),
		goal(goalLatencyP99, r.Latency.ServerP99, "<= 100", r.Latency.ServerP99 <= 100, "latency"),
		goal(goalOutageDrained, o.DrainedAfterSec, "<= 20", o.DrainedAfterSec <= 20, "outage"),
		goal(goalOutageNormal, o.NormalAfterSec, "<= 30", o.NormalAfterSec >= 0 && o.NormalAfterSec <= 30, "outage"),
		goal(goalConsumerVsBare, r.Consumer.Ratio, ">= 0.8", r.Consumer.Ratio >= 0.8, "consumer"),
		goal(goalRelayVsStock, relayVsStock, ">= 5", relayVsStock >= 5, "relays"),
		goal(goalRelayVsDebezium, relayVsDebezium, ">= 1.5", relayVsDebezium >= 1.5, "relays"),
		goal(goalRelayP99VsDebezium, relayP99VsDebezium, "<= 1", relayP99VsDebezium > 0 && relayP99VsDebezium <= 1, "relays"),
		// the auditor costs at most 10% of the saga's max rate
		goal(goalSagaAuditOnVsOff, r.Audit.RateOnVsOff, ">= 0.9", r.Audit.RateOnVsOff >= 0.9, "audit"),
		// Kafka back -> the first row out of the outbox
		goal(goalDrainReconnect, r.Drain.ReconnectSec, "<= 1.5", r.Drain.ReconnectSec <= 1.5, "drain"),
		// onceflow's saga against the same saga of stock Watermill parts
		goal(goalSagaVsStock, r.Stock.SagaVsStock, ">= 1.5", r.Stock.SagaVsStock >= 1.5, "saga", "stock"),
	}
	if g := &r.Goals[6]; g.Note == "" && o.NormalAfterSec < 0 {
		g.Note = "-1: not back to normal before the load ended"
	}
}

// phase returns the status and error of the named phase in r.Phases, or
// "did not run" if it is not there.
func (r *Report) phase(name string) (status, err string) {
	for _, p := range r.Phases {
		if p.Name == name {
			return p.Status, p.Error
		}
	}
	return "did not run", ""
}

// ratio is a/b rounded, or 0 when b is 0 (a phase that did not run).
func ratio(a, b float64, digits int) float64 {
	if b == 0 {
		return 0
	}
	return round(a/b, digits)
}

// Table is the human summary: how each phase ended, each section (or why it
// is missing), and the goals.
func (r *Report) Table() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	// section writes a phase's line, or why there is none
	section := func(phase, format string, args ...any) {
		switch st, err := r.phase(phase); {
		case st == statusOK:
			w("%-11s "+format, append([]any{phase}, args...)...)
		case err != "":
			w("%-11s not measured (%s: %s)", phase, st, firstLine(err))
		default:
			w("%-11s not measured (%s)", phase, st)
		}
	}
	w("onceflow bench, %s, %d CPUs, %s", r.Date, r.Machine.CPUs, r.Machine.GoVersion)
	w("")
	for _, p := range r.Phases {
		line := fmt.Sprintf("phase %-10s %-8s %6.1f s", p.Name, p.Status, p.TookSec)
		if p.Error != "" {
			line += "  " + firstLine(p.Error)
		}
		w("%s", line)
	}
	w("")
	section("baselines", "R_c %.0f commits/s (order + outbox, %d connections)   P sync %.0f/s   P async %.0f/s   L_k p99 %.1f ms",
		r.Baselines.CommitRate, r.Baselines.CommitConcurrency, r.Baselines.ProduceSync, r.Baselines.ProduceAsync, r.Baselines.KafkaP99Ms)
	section("saga", "max sustained %.0f orders/s (median of %s); K = %d commits/order; R_c/K = %.0f/s; ratio %.2f",
		r.Throughput.MaxSustained, repeatResults(r.Throughput.Repeats), r.K, r.Baselines.CommitRate/float64(r.K), r.Throughput.RatioToCommitBound)
	if st, _ := r.phase("saga"); st != statusOK {
		w("%-11s later phases assumed -max-rate %.0f orders/s", "", r.Throughput.MaxSustained)
	} else {
		for i, rp := range r.Throughput.Repeats {
			w("%-11s repeat %d %s", "", i+1, stepsLine(rp))
		}
		w("%-11s %s", "cpu", cpuLine(r.CPU))
	}
	a := r.Audit
	section("audit", "auditor on %.0f / off %.0f orders/s (medians of %s / %s) = %.2f; %.2f / %.2f CPU-ms/order",
		a.RateOn, a.RateOff, repeatResults(a.On.Repeats), repeatResults(a.Off.Repeats), a.RateOnVsOff, a.CPUMsPerOrderOn, a.CPUMsPerOrderOff)
	if st, _ := r.phase("audit"); st == statusOK {
		for i, rp := range a.On.Repeats {
			w("%-11s on, repeat %d %s", "", i+1, stepsLine(rp))
		}
		for i, rp := range a.Off.Repeats {
			w("%-11s off, repeat %d %s", "", i+1, stepsLine(rp))
		}
		w("%-11s on, cpu %s", "", cpuLine(a.On.CPU))
		w("%-11s off, cpu %s", "", cpuLine(a.Off.CPU))
	}
	st := r.Stock
	section("stock", "stock Watermill parts (relay polling every %s): max sustained %.0f orders/s (median of %s); onceflow's saga %.2f × that; %.2f CPU-ms/order (onceflow %.2f)",
		st.PollInterval, st.Throughput.MaxSustained, repeatResults(st.Throughput.Repeats), st.SagaVsStock, st.CPU.TotalMs, r.CPU.TotalMs)
	if ph, _ := r.phase("stock"); ph == statusOK {
		for i, rp := range st.Throughput.Repeats {
			w("%-11s repeat %d %s", "", i+1, stepsLine(rp))
		}
		w("%-11s %s", "", cpuLine(st.CPU))
		w("%-11s at %.0f/s: server p50 %.1f / p99 %.1f ms, POST p99 %.1f ms", "", st.Latency.Rate, st.Latency.ServerP50, st.Latency.ServerP99, st.Latency.PostP99)
	}
	section("latency", "at %.0f/s: server p50 %.1f / p99 %.1f / p99.9 %.1f ms; client p50 %.1f / p99 %.1f / p99.9 %.1f ms; POST p99 %.1f ms",
		r.Latency.Rate, r.Latency.ServerP50, r.Latency.ServerP99, r.Latency.ServerP999, r.Latency.ClientP50, r.Latency.ClientP99, r.Latency.ClientP999, r.Latency.PostP99)
	if p := r.Profiles; p != nil {
		section("profile", "at %.0f/s, %d orders (step passed %v, p99 %.1f ms under the profiler): statements per order: order_db %.1f, payment_db %.1f",
			p.Rate, p.Orders, p.Step.Passed, p.Step.P99Ms, p.StatementsPerOrder["order_db"]["total"], p.StatementsPerOrder["payment_db"]["total"])
		for _, name := range []string{"order_service", "payment_service"} {
			sp := p.Services[name]
			var top []string
			for _, f := range sp.Top[:min(6, len(sp.Top))] {
				top = append(top, fmt.Sprintf("%s %.0f%%", shortFunc(f.Function), f.Share*100))
			}
			w("%-11s %s %.2f CPU-ms/order (%s): %s", "", name, sp.CPUMsPerOrder, sp.File, strings.Join(top, ", "))
		}
	} else {
		section("profile", "no profile")
	}
	section("drain", "%d events in %.2f s = %.0f/s (first forwarded after %.2f s; %.0f/s from then); %.3f × P async, %.2f × P sync",
		r.Drain.Events, r.Drain.Seconds, r.Drain.Rate, r.Drain.ReconnectSec, r.Drain.SteadyRate, r.Drain.VsProduceAsync, r.Drain.VsProduceSync)
	section("outage", "at %.0f/s, Kafka down %.0f s: intake errors %d, POST p99 during %.1f ms, backlog drained %.1f s after return, latency normal %.1f s after",
		r.Outage.Rate, r.Outage.OutageSec, r.Outage.IntakeErrors, r.Outage.PostP99DuringMs, r.Outage.DrainedAfterSec, r.Outage.NormalAfterSec)
	section("forwarder", "alone: %d events in %.2f s = %.0f/s (first forwarded after %.2f s)",
		r.Forwarder.Events, r.Forwarder.Seconds, r.Forwarder.Rate, r.Forwarder.FirstSec)
	var runs []string
	for _, run := range r.Consumer.Runs {
		runs = append(runs, fmt.Sprintf("%s %.0f", run.Mode, run.Rate))
	}
	section("consumer", "medians: stack %.0f/s, bare loop %.0f/s, ratio %.2f (runs: %s)", r.Consumer.StackRate, r.Consumer.BareRate, r.Consumer.Ratio, strings.Join(runs, ", "))
	var lanes []string
	for _, l := range r.Relays.Lanes {
		lanes = append(lanes, fmt.Sprintf("%s %.0f/s, p50 %.1f / p99 %.1f ms at %.0f/s, CPU-ms/event %.3f + MariaDB %.3f",
			l.Name, l.EventsPerS, l.P50Ms, l.P99Ms, l.LatencyRate, l.RelayCPUMs, l.DBCPUMs))
	}
	section("relays", "medians of %d rounds: %s; raw produce %.0f/s sync, %.0f/s async", r.Relays.Rounds, strings.Join(lanes, "; "), r.Relays.ProduceSync, r.Relays.ProduceAsync)
	g := r.Galera
	section("galera", "3-node clusters (up in %.0f s): max sustained %.0f orders/s (median of %s) = %.2f × the single servers' %.0f; %.2f CPU-ms/order (single %.2f)",
		g.StartSec, g.Throughput.MaxSustained, repeatResults(g.Throughput.Repeats), g.VsSingle, r.Throughput.MaxSustained, g.CPU.TotalMs, r.CPU.TotalMs)
	if st, _ := r.phase("galera"); st == statusOK {
		w("%-11s at %.0f/s: server p50 %.1f / p99 %.1f ms, POST p99 %.1f ms (single servers at %.0f/s: p50 %.1f / p99 %.1f, POST p99 %.1f)", "",
			g.Latency.Rate, g.Latency.ServerP50, g.Latency.ServerP99, g.Latency.PostP99, r.Latency.Rate, r.Latency.ServerP50, r.Latency.ServerP99, r.Latency.PostP99)
		if g.LatencyNote != "" {
			w("%-11s latency %s", "", g.LatencyNote)
		}
	}
	w("")
	w("%-30s %10s  %-22s %s", "goal", "value", "target", "met")
	for _, g := range r.Goals {
		met := "no"
		if g.Met {
			met = "yes"
		}
		if g.Note != "" {
			met += " (" + g.Note + ")"
		}
		w("%-30s %10.2f  %-22s %s", g.Name, g.Value, g.Target, met)
	}
	return b.String()
}

// stepsLine is a search's bracket and steps, e.g. "[50, 100]: 50 pass
// (50/s, p99 20 ms); 100 fail (91/s, p99 300 ms)".
func stepsLine(rp Repeat) string {
	var steps []string
	for _, st := range rp.Steps {
		mark := "fail"
		if st.Passed {
			mark = "pass"
		}
		steps = append(steps, fmt.Sprintf("%.0f %s (%.0f/s, p99 %.0f ms)", st.Rate, mark, st.Completed, st.P99Ms))
	}
	return fmt.Sprintf("[%.0f, %.0f]: %s", rp.BracketLo, rp.BracketHi, strings.Join(steps, "; "))
}

// cpuLine is a CPU split: each process's CPU-ms per order, the total, and
// what the machine offered per order.
func cpuLine(c CPU) string {
	var per []string
	for _, name := range cpuProcs {
		per = append(per, fmt.Sprintf("%s %.2f", name, c.PerOrderMs[name]))
	}
	return fmt.Sprintf("at %.0f/s over %.0f s, %d orders: %s; total %.2f of %.2f CPU-ms/order available",
		c.Rate, c.WindowSec, c.Orders, strings.Join(per, ", "), c.TotalMs, c.AvailableMs)
}

// repeatResults lists the repeats' results, e.g. "250, 231, 250".
func repeatResults(rs []Repeat) string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%.0f", r.Result))
	}
	return strings.Join(out, ", ")
}

// firstLine is s up to its first newline (errors from infra.sh carry its output).
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// shortFunc drops a function name's package path: "github.com/a/b.(*T).M"
// becomes "b.(*T).M".
func shortFunc(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}
