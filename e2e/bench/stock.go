package main

import (
	"context"
	"math"
	"path/filepath"

	"github.com/onceflow/onceflow/e2e/harness"
)

// stockPoll is the stock relay's poll interval in the stock lane: Watermill's
// default (1 s) makes every hop wait up to a second, so no step passes the
// p99 rule; 10 ms is what a Watermill user who wants low latency sets.
const stockPoll = "10ms"

// Stock is the same saga wired from stock Watermill parts only, the peer a
// Watermill user would build instead (the services' fault build, switches
// *_FAULT_STOCK_RELAY and *_FAULT_STOCK_ROUTER): watermill-sql's default
// schema, offsets adapter and forwarder polling every PollInterval, and a
// router with Recoverer, PoisonQueue, an in-memory Deduplicator and Retry;
// no batch relay, no wake on commit, no inbox, no delivery auditor. Measured
// by the saga phase's search and latency rule, in the same run.
type Stock struct {
	PollInterval string     `json:"poll_interval"`
	Throughput   Throughput `json:"throughput"`
	CPU          CPU        `json:"cpu"`
	// Latency is at half the lane's max sustained rate.
	Latency Latency `json:"latency"`
	// SagaVsStock is onceflow's max sustained rate / the lane's.
	SagaVsStock float64 `json:"saga_vs_stock"`
}

// stockEnv switches both services to the stock parts.
func stockEnv() []string {
	var env []string
	for _, svc := range []string{"ORDER_", "PAYMENT_"} {
		env = append(env, svc+"FAULT_STOCK_RELAY=true", svc+"FAULT_STOCK_ROUTER=true",
			svc+"FAULT_STOCK_POLL_INTERVAL="+stockPoll, svc+"AUDIT_DISABLED=true")
	}
	return env
}

// stock runs the saga's search and the latency measurement on the stock
// lane, on a new stack of the fault build's services. It closes the other
// stacks first (as the audit and outage phases do) to have the cores to
// itself. The search starts from [a quarter, half] of the saga's rate.
func (b *bench) stock(ctx context.Context, r *Report) error {
	b.stacks.closeAll()
	orderBin, paymentBin, err := b.faultBinaries()
	if err != nil {
		return err
	}
	r.Stock.PollInterval = stockPoll
	s, err := newStack(ctx, infra, orderBin, paymentBin, "stock", stockEnv()...)
	if err != nil {
		return err
	}
	b.stacks.add(s)
	defer s.Close()
	saga := r.Throughput.MaxSustained
	lo, hi := math.Max(10, math.Round(saga/4)), math.Max(20, math.Round(saga/2))
	say("stock: saga throughput of the stock Watermill lane, from [%.0f, %.0f]", lo, hi)
	if r.Stock.CPU, err = searchMax(ctx, s, &r.Stock.Throughput, lo, hi); err != nil {
		return err
	}
	rate := math.Max(1, math.Round(r.Stock.Throughput.MaxSustained/2))
	say("stock: latency at %.0f orders/s", rate)
	r.Stock.Latency, err = measureLatency(ctx, s, rate)
	return err
}

// faultBinaries builds the two services with -tags faults once (the stock
// lane's switches) and returns their paths.
func (b *bench) faultBinaries() (order, payment string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.faultOrderBin == "" {
		say("building the services with -tags faults")
		if b.faultOrderBin, b.faultPaymentBin, err = harness.Build(filepath.Join(outDir, "bin-faults"), "faults"); err != nil {
			b.faultOrderBin, b.faultPaymentBin = "", ""
			return "", "", err
		}
	}
	return b.faultOrderBin, b.faultPaymentBin, nil
}
