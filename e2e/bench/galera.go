package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
)

// Galera is the saga on each database as a three-node Galera cluster behind
// HAProxy (ADR 0060), against the single servers the saga and latency phases
// measured in the same run: what synchronous replication costs here.
type Galera struct {
	// StartSec is how long the two clusters took to start (each node's first
	// start copies the bootstrap node: a full state transfer).
	StartSec   float64    `json:"start_s"`
	Throughput Throughput `json:"throughput"`
	// VsSingle is the clusters' max sustained rate / the single servers'.
	VsSingle float64 `json:"max_sustained_vs_single"`
	CPU      CPU     `json:"cpu"`
	// Latency is at the rate the latency phase used (half the single servers'
	// max), or at half the clusters' max if that is lower; LatencyNote says which.
	Latency     Latency `json:"latency"`
	LatencyNote string  `json:"latency_note,omitempty"`
}

// galera replaces the single database servers with the clusters on the same
// ports (the services' DSNs name the proxy) and runs the saga's search and
// the latency measurement on them. The search starts from [half, all] of the
// single servers' rate. run() stops every server at the end, the clusters too.
func (b *bench) galera(ctx context.Context, r *Report) error {
	b.stacks.closeAll()
	cluster := *infra
	cluster.DBNodes = 3
	say("galera: replacing the single database servers with three-node Galera clusters")
	if err := infra.Run("stop", harness.OrderDB, harness.PaymentDB); err != nil {
		return err
	}
	start := time.Now()
	if err := cluster.Up(); err != nil {
		return err
	}
	r.Galera.StartSec = round(time.Since(start).Seconds(), 1)
	orderBin, paymentBin, err := b.binaries()
	if err != nil {
		return err
	}
	s, err := newStack(ctx, &cluster, orderBin, paymentBin, "galera")
	if err != nil {
		return err
	}
	b.stacks.add(s)
	defer s.Close()
	single := r.Throughput.MaxSustained
	say("galera: saga throughput, from [%.0f, %.0f] (half the single servers' %.0f/s, and all of it)", math.Round(single/2), single, single)
	if r.Galera.CPU, err = searchMax(ctx, s, &r.Galera.Throughput, math.Max(10, math.Round(single/2)), math.Max(20, single)); err != nil {
		return err
	}
	rate := r.Latency.Rate
	if rate == 0 {
		rate = single / 2
	}
	if half := r.Galera.Throughput.MaxSustained / 2; rate > half {
		r.Galera.LatencyNote = fmt.Sprintf("at half the clusters' max: the single servers' latency rate %.0f/s is more than that", rate)
		rate = half
	}
	say("galera: latency at %.0f orders/s", rate)
	r.Galera.Latency, err = measureLatency(ctx, s, rate)
	return err
}
