// The outage phase: load while Kafka is killed for a minute, and how long the
// latency takes to come back.

package main

import (
	"context"
	"path/filepath"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
)

func (b *bench) outage(ctx context.Context, r *Report) error {
	b.stacks.closeAll() // the saga stack is done with: free its CPU
	orderBin, paymentBin, err := b.binaries()
	if err != nil {
		return err
	}
	s, err := newStack(ctx, infra, orderBin, paymentBin, "outage")
	if err != nil {
		return err
	}
	b.stacks.add(s)
	defer s.Close()
	say("Kafka outage at 30%% of max rate")
	return outage(ctx, s, r)
}

// outage runs load at 30% of the max rate and kills Kafka for 60 s in the
// middle. If ctx ends while Kafka is down, Kafka is left stopped: the next
// phase starts it (infra.Up).
func outage(ctx context.Context, s *harness.Stack, r *Report) error {
	rate := max(5, r.Throughput.MaxSustained*0.3)
	before, down, after := 15*time.Second, 60*time.Second, 45*time.Second
	var killedAt, backAt time.Time
	faultErr := make(chan error, 1)
	start := time.Now()
	go func() {
		if err := sleep(ctx, before); err != nil {
			faultErr <- err
			return
		}
		killedAt = time.Now()
		if err := infra.Kill(harness.Kafka); err != nil {
			faultErr <- err
			return
		}
		if err := sleep(ctx, down); err != nil {
			faultErr <- err
			return
		}
		err := infra.Start(harness.Kafka)
		backAt = time.Now()
		faultErr <- err
	}()
	h := load(ctx, s, rate, before+down+after)
	if err := <-faultErr; err != nil {
		return err
	}
	waitDrained(ctx, s, 120*time.Second)
	times, _, err := orderTimes(ctx, s)
	if err != nil {
		return err
	}
	o := Outage{Rate: rate, OutageSec: down.Seconds()}
	var duringPost, baseline []float64
	var pts []point
	var lastBefore time.Time // latest terminal time of an order accepted before Kafka came back
	for _, q := range h.Requests {
		if q.Outcome != harness.Accepted {
			o.IntakeErrors++
			continue
		}
		t := times[q.OrderID]
		lat := t[1].Sub(t[0]).Seconds() * 1000
		pts = append(pts, point{x: t[0].Sub(start).Seconds(), y: lat})
		switch {
		case q.SentAt.Before(killedAt):
			baseline = append(baseline, lat)
		case q.SentAt.Before(backAt):
			duringPost = append(duringPost, q.Latency.Seconds()*1000)
		}
		if q.SentAt.Before(backAt) && t[1].After(lastBefore) {
			lastBefore = t[1]
		}
	}
	o.PostP99DuringMs = round(percentile(duringPost, 0.99), 1)
	o.BaselineP99Ms = round(percentile(baseline, 0.99), 1)
	o.DrainedAfterSec = round(lastBefore.Sub(backAt).Seconds(), 1)
	o.NormalAfterSec = round(normalAfter(pts, backAt.Sub(start).Seconds(), o.BaselineP99Ms), 1)
	r.Outage = o
	return plotOutage(pts, killedAt.Sub(start).Seconds(), backAt.Sub(start).Seconds(), filepath.Join(outDir, "outage-latency.png"))
}

type point struct{ x, y float64 }

// normalAfter returns the seconds after back from which every 1-second bucket of
// newly created orders has a p99 within 1.5× the baseline p99 (or +50 ms), or -1
// if the last bucket of the run is still above that (not normal within the run).
func normalAfter(pts []point, back, baseP99 float64) float64 {
	limit := max(1.5*baseP99, baseP99+50)
	buckets := map[int][]float64{}
	last := 0
	for _, p := range pts {
		if p.x >= back {
			b := int(p.x - back)
			buckets[b] = append(buckets[b], p.y)
			last = max(last, b)
		}
	}
	normal := 0
	for b := 0; b <= last; b++ {
		if len(buckets[b]) > 0 && percentile(buckets[b], 0.99) > limit {
			normal = b + 1
		}
	}
	if normal > last {
		return -1
	}
	return float64(normal)
}
