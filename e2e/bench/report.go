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
	Consumer   Consumer   `json:"consumer"`
	Goals      []Goal     `json:"goals"`
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

// Step is one rate of the stepped load.
type Step struct {
	Rate      float64 `json:"offered_per_s"`
	Accepted  int     `json:"accepted"`
	Completed float64 `json:"completed_per_s"`
	P99Ms     float64 `json:"p99_ms"`
	Backlog   int     `json:"backlog"`
	Sustained bool    `json:"sustained"`
}

// Throughput is the saga's highest sustained rate.
type Throughput struct {
	Steps               []Step  `json:"steps"`
	MaxSustained        float64 `json:"max_sustained_per_s"`
	MaxSustainedOffered float64 `json:"max_sustained_offered_per_s"`
	// RatioToCommitBound is MaxSustained / (R_c / K).
	RatioToCommitBound float64 `json:"ratio_to_commit_bound"`
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

// Consumer compares the full consumer stack with a bare loop.
type Consumer struct {
	Events    int     `json:"events"`
	StackRate float64 `json:"stack_per_s"`
	BareRate  float64 `json:"bare_per_s"`
	Ratio     float64 `json:"ratio"`
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

// evaluate computes the ratios and the goals from the sections of the phases
// that ended "ok" (see Goal).
func (r *Report) evaluate() {
	bound := ratio(r.Baselines.CommitRate, float64(r.K), 0)
	r.Throughput.RatioToCommitBound = ratio(r.Throughput.MaxSustained, bound, 2)
	r.Consumer.Ratio = ratio(r.Consumer.StackRate, r.Consumer.BareRate, 2)
	drainToSaga := ratio(r.Drain.Rate, r.Throughput.MaxSustained, 2)
	drainToP := ratio(r.Drain.Rate, r.Baselines.ProduceAsync, 3)
	drainToPSync := ratio(r.Drain.Rate, r.Baselines.ProduceSync, 2)
	goal := func(name string, value float64, target string, met bool, phases ...string) Goal {
		for _, p := range phases {
			if st, _ := r.phase(p); st != statusOK {
				return Goal{Name: name, Target: target, Note: "not measured: phase " + p + " " + st}
			}
		}
		return Goal{Name: name, Value: value, Target: target, Met: met}
	}
	r.Goals = []Goal{
		goal("saga throughput / (R_c/K)", r.Throughput.RatioToCommitBound, ">= 0.5 (stretch 0.8)", r.Throughput.RatioToCommitBound >= 0.5, "baselines", "saga"),
		goal("forwarder drain / max saga rate", drainToSaga, ">= 3", drainToSaga >= 3, "drain", "saga"),
		goal("forwarder drain / raw async produce rate", drainToP, ">= 0.25", drainToP >= 0.25, "drain", "baselines"),
		goal("forwarder drain / raw sync produce rate (for reference)", drainToPSync, "-", true, "drain", "baselines"),
		goal("POST→terminal p50 at 50% of max (ms, server)", r.Latency.ServerP50, "<= 30", r.Latency.ServerP50 <= 30, "latency"),
		goal("POST→terminal p99 at 50% of max (ms, server)", r.Latency.ServerP99, "<= 150", r.Latency.ServerP99 <= 150, "latency"),
		goal("Kafka outage: intake errors", float64(r.Outage.IntakeErrors), "0", r.Outage.IntakeErrors == 0, "outage"),
		goal("Kafka outage: backlog drained after return (s)", r.Outage.DrainedAfterSec, "<= 45", r.Outage.DrainedAfterSec <= 45, "outage"),
		goal("Kafka outage: latency normal after return (s; -1: not in the run)", r.Outage.NormalAfterSec, "<= 45",
			r.Outage.NormalAfterSec >= 0 && r.Outage.NormalAfterSec <= 45, "outage"),
		goal("consumer stack / bare loop", r.Consumer.Ratio, ">= 0.8", r.Consumer.Ratio >= 0.8, "consumer"),
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
	section("saga", "max sustained %.1f orders/s (offered %.0f/s); K = %d commits/order; R_c/K = %.0f/s; ratio %.2f",
		r.Throughput.MaxSustained, r.Throughput.MaxSustainedOffered, r.K, r.Baselines.CommitRate/float64(r.K), r.Throughput.RatioToCommitBound)
	if st, _ := r.phase("saga"); st != statusOK {
		w("%-11s later phases assumed -max-rate %.0f orders/s", "", r.Throughput.MaxSustainedOffered)
	}
	section("latency", "at %.0f/s: server p50 %.1f / p99 %.1f / p99.9 %.1f ms; client p50 %.1f / p99 %.1f / p99.9 %.1f ms; POST p99 %.1f ms",
		r.Latency.Rate, r.Latency.ServerP50, r.Latency.ServerP99, r.Latency.ServerP999, r.Latency.ClientP50, r.Latency.ClientP99, r.Latency.ClientP999, r.Latency.PostP99)
	section("drain", "%d events in %.2f s = %.0f/s (first forwarded after %.2f s; %.0f/s from then)",
		r.Drain.Events, r.Drain.Seconds, r.Drain.Rate, r.Drain.ReconnectSec, r.Drain.SteadyRate)
	section("outage", "at %.0f/s, Kafka down %.0f s: intake errors %d, POST p99 during %.1f ms, backlog drained %.1f s after return, latency normal %.1f s after",
		r.Outage.Rate, r.Outage.OutageSec, r.Outage.IntakeErrors, r.Outage.PostP99DuringMs, r.Outage.DrainedAfterSec, r.Outage.NormalAfterSec)
	section("consumer", "stack %.0f/s, bare loop %.0f/s, ratio %.2f", r.Consumer.StackRate, r.Consumer.BareRate, r.Consumer.Ratio)
	w("")
	w("%-58s %10s  %-22s %s", "goal", "value", "target", "met")
	for _, g := range r.Goals {
		met := "no"
		if g.Met {
			met = "yes"
		}
		if g.Note != "" {
			met += " (" + g.Note + ")"
		}
		w("%-58s %10.2f  %-22s %s", g.Name, g.Value, g.Target, met)
	}
	return b.String()
}

// firstLine is s up to its first newline (errors from infra.sh carry its output).
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
