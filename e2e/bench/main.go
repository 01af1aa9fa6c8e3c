// Command bench measures the whole saga (throughput, latency, forwarder drain,
// a Kafka outage, consumer-stack overhead) against raw baselines measured in the
// same run on the same servers, and writes build/bench/report.json, a table on
// stdout and build/bench/outage-latency.png. `make bench` runs it; see
// docs/benchmarks.md.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/messaging"
)

// K is the number of durable MariaDB commits on an order's critical path: the
// order and its OrderPlaced (1), the order forwarder's delete (2), the payment
// consumer's inbox + charge + PaymentCompleted (3), the payment forwarder's delete
// (4), the order consumer's inbox + confirmation (5).
const K = 5

var (
	outDir = filepath.Join(harness.RepoRoot(), "build", "bench")
	infra  = &harness.Infra{
		Dir:         filepath.Join(outDir, "infra"),
		OrderDBPort: 23307, PaymentDBPort: 23308, KafkaPort: 29092, KafkaControllerPort: 29093,
	}
)

// phases selects what to run (for working on one measurement); a partial run
// still writes its report, with the other sections empty.
var (
	phases  = flag.String("phases", "baselines,saga,latency,drain,outage,consumer", "comma-separated phases to run")
	maxRate = flag.Float64("max-rate", 200, "saga rate (orders/s) to assume when the saga phase is not run")
	svcEnv  = flag.String("service-env", "", "comma-separated NAME=value settings for both services, to compare a tuning (e.g. ORDER_OUTBOX_BATCH_SIZE=10)")
)

func want(phase string) bool { return slices.Contains(strings.Split(*phases, ","), phase) }

func main() {
	flag.Parse()
	start := time.Now()
	r, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	r.TookSec = round(time.Since(start).Seconds(), 0)
	data, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(outDir, "report.json"), append(data, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Print(r.Table())
	fmt.Printf("\nreport: %s, plot: %s, took %s\n", filepath.Join(outDir, "report.json"),
		filepath.Join(outDir, "outage-latency.png"), time.Since(start).Round(time.Second))
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run() (*Report, error) {
	r := &Report{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), K: K}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	say("starting servers (%s)", infra.Dir)
	if err := infra.Up(); err != nil {
		return nil, err
	}
	defer func() { _ = infra.Down() }()
	kafka := messaging.KafkaConfig{Brokers: []string{infra.KafkaAddr()}, ClientID: "bench"}.Defaults()
	orderBin, paymentBin, err := harness.Build(filepath.Join(outDir, "bin"))
	if err != nil {
		return nil, err
	}

	if want("baselines") {
		say("baseline: MariaDB commit rate of an order-shaped transaction")
		if r.Baselines.CommitRate, err = commitRate(32, 8*time.Second); err != nil {
			return nil, err
		}
		r.Baselines.CommitConcurrency = 32
		say("baseline: raw produce rates and latency (acks=all, idempotent)")
		if r.Baselines.ProduceSync, r.Baselines.ProduceAsync, r.Baselines.KafkaP99Ms, err = kafkaBaselines(kafka); err != nil {
			return nil, err
		}
	}

	r.Throughput.MaxSustained, r.Throughput.MaxSustainedOffered = *maxRate, *maxRate
	if want("saga") || want("latency") || want("drain") {
		stack, err := newStack(orderBin, paymentBin, "saga")
		if err != nil {
			return nil, err
		}
		if want("saga") {
			say("saga throughput, stepped open-model load")
			if err := throughput(stack, r); err != nil {
				return nil, err
			}
		}
		if want("latency") {
			say("latency at 50%% of %.0f orders/s", r.Throughput.MaxSustainedOffered)
			if err := latency(stack, r); err != nil {
				return nil, err
			}
		}
		if want("drain") {
			say("forwarder drain")
			if err := drain(stack, r); err != nil {
				return nil, err
			}
		}
		stack.Close()
	}

	if want("outage") {
		stack, err := newStack(orderBin, paymentBin, "outage")
		if err != nil {
			return nil, err
		}
		say("Kafka outage at 30%% of max rate")
		if err := outage(stack, r); err != nil {
			return nil, err
		}
		stack.Close()
	}

	if want("consumer") {
		say("consumer stack vs bare loop")
		if err := consumerOverhead(kafka, r); err != nil {
			return nil, err
		}
	}
	r.evaluate()
	return r, nil
}

func newStack(orderBin, paymentBin, name string) (*harness.Stack, error) {
	s, err := harness.NewStack(infra, harness.StackConfig{
		Name: name + "_" + strings.ToLower(watermill.NewShortUUID()[:6]), OrderBin: orderBin, PaymentBin: paymentBin,
		LogDir:     filepath.Join(outDir, "logs"),
		OrderEnv:   append([]string{"LOG_LEVEL=warn", "ORDER_PAYMENT_TIMEOUT=10m"}, extraEnv()...),
		PaymentEnv: append([]string{"LOG_LEVEL=warn"}, extraEnv()...),
	})
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	var accounts []harness.Account
	for _, c := range customers {
		accounts = append(accounts, harness.Account{CustomerID: c, BalanceCents: 1_000_000_000_000, Currency: "EUR"})
	}
	if err := s.SeedAccounts(accounts...); err != nil {
		return nil, err
	}
	say("warm-up: consumer groups joined, connections open")
	return s, warmUp(s)
}

func extraEnv() []string {
	if *svcEnv == "" {
		return nil
	}
	return strings.Split(*svcEnv, ",")
}

// customers: many, so that payments of different orders rarely wait on the same
// account row.
var customers = func() []string {
	c := make([]string, 500)
	for i := range c {
		c[i] = fmt.Sprintf("bench-%d", i)
	}
	return c
}()

func load(s *harness.Stack, rate float64, d time.Duration) *harness.History {
	return harness.RunLoad(context.Background(), s, harness.LoadConfig{
		Rate: rate, Duration: d, Mix: []harness.Customer{{IDs: customers, Weight: 1}},
		MinAmount: 100, MaxAmount: 1000, Seed: uint64(time.Now().UnixNano()),
	})
}

// commitRate measures transactions/s of INSERT order row + INSERT outbox row
// (through messaging.Outbox, the services' code), at the given concurrency.
func commitRate(concurrency int, d time.Duration) (float64, error) {
	db, err := freshDB(infra.OrderDBAddr(), "bench_commits")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(concurrency)
	if err := messaging.Migrate(context.Background(), db, nil, slog.New(slog.DiscardHandler)); err != nil {
		return 0, err
	}
	if _, err := db.Exec(`CREATE TABLE orders (id VARCHAR(64) PRIMARY KEY, customer_id VARCHAR(64) NOT NULL,
		amount_cents BIGINT NOT NULL, currency CHAR(3) NOT NULL, status VARCHAR(16) NOT NULL,
		cancel_reason VARCHAR(255) NOT NULL DEFAULT '', paid BOOLEAN NOT NULL DEFAULT FALSE,
		refunded BOOLEAN NOT NULL DEFAULT FALSE, version INT NOT NULL, created_at TIMESTAMP(6) NOT NULL,
		updated_at TIMESTAMP(6) NOT NULL, KEY (customer_id, created_at), KEY (status, created_at))`); err != nil {
		return 0, err
	}
	outbox, err := messaging.NewOutbox(messaging.OutboxConfig{})
	if err != nil {
		return 0, err
	}
	var n atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				id := fmt.Sprintf("%d-%d-%s", w, i, watermill.NewShortUUID())
				err := messaging.InTx(context.Background(), db, func(ctx context.Context, tx *sql.Tx) error {
					now := time.Now().UTC()
					if _, err := tx.ExecContext(ctx, `INSERT INTO orders (id, customer_id, amount_cents, currency, status,
						version, created_at, updated_at) VALUES (?, 'c-1', 100, 'EUR', 'PENDING', 1, ?, ?)`, id, now, now); err != nil {
						return err
					}
					return outbox.PublishEvents(ctx, tx, "orders", events.Event{ID: watermill.NewUUID(), OrderID: id,
						OrderVersion: 1, OccurredAt: now, Payload: events.OrderPlaced{CustomerID: "c-1", AmountCents: 100, Currency: "EUR"}})
				})
				if err != nil {
					errs <- err
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return round(float64(n.Load())/d.Seconds(), 0), nil
}

func freshDB(addr, name string) (*sql.DB, error) {
	admin, err := sql.Open("mysql", harness.DSN(addr, ""))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if _, err := admin.Exec("DROP DATABASE IF EXISTS `" + name + "`"); err != nil {
		return nil, err
	}
	if _, err := admin.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		return nil, err
	}
	return sql.Open("mysql", harness.DSN(addr, name))
}

// kafkaBaselines measures the raw produce rate with the services' producer
// settings, synchronously (one message at a time, like Watermill's publisher) and
// asynchronously (batched), and the produce→consume p99 at a low rate.
func kafkaBaselines(kafka messaging.KafkaConfig) (syncRate, asyncRate, p99ms float64, err error) {
	topic := "bench-raw-" + strings.ToLower(watermill.NewShortUUID()[:6])
	if err := kafka.EnsureTopics(context.Background(), []events.TopicSpec{{Name: topic, Partitions: events.DefaultPartitions}}); err != nil {
		return 0, 0, 0, err
	}
	payload := make([]byte, 450) // about an event in its envelope with headers
	msg := func(i int) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.ByteEncoder(payload)}
	}
	cfg := kafka.ProducerConfig()
	syncP, err := sarama.NewSyncProducer(kafka.Brokers, cfg)
	if err != nil {
		return 0, 0, 0, err
	}
	n, d := 0, 5*time.Second
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		if _, _, err := syncP.SendMessage(msg(n)); err != nil {
			return 0, 0, 0, err
		}
	}
	syncRate = float64(n) / d.Seconds()

	// produce→consume latency at 100 messages/s
	consumer, err := sarama.NewConsumer(kafka.Brokers, kafka.ConsumerConfig())
	if err != nil {
		return 0, 0, 0, err
	}
	var mu sync.Mutex
	var lat []float64
	var pcs []sarama.PartitionConsumer
	for p := range int32(events.DefaultPartitions) {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, 0, 0, err
		}
		pcs = append(pcs, pc)
		go func() {
			for m := range pc.Messages() {
				var sent int64
				if len(m.Value) >= 8 {
					for _, b := range m.Value[:8] {
						sent = sent<<8 | int64(b)
					}
				}
				mu.Lock()
				lat = append(lat, float64(time.Now().UnixNano()-sent)/1e6)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	for i := range 500 {
		v := make([]byte, 450)
		now := time.Now().UnixNano()
		for b := 7; b >= 0; b-- {
			v[b] = byte(now)
			now >>= 8
		}
		if _, _, err := syncP.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.ByteEncoder(v)}); err != nil {
			return 0, 0, 0, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second)
	for _, pc := range pcs {
		pc.AsyncClose()
	}
	consumer.Close()
	syncP.Close()
	mu.Lock()
	p99ms = percentile(lat, 0.99)
	mu.Unlock()

	cfg = kafka.ProducerConfig()
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	asyncP, err := sarama.NewAsyncProducer(kafka.Brokers, cfg)
	if err != nil {
		return 0, 0, 0, err
	}
	var acked atomic.Int64
	go func() {
		for range asyncP.Successes() {
			acked.Add(1)
		}
	}()
	go func() {
		for e := range asyncP.Errors() {
			say("async produce error: %v", e.Err)
		}
	}()
	startAcked, t0 := acked.Load(), time.Now()
	for i := 0; time.Since(t0) < d; i++ {
		asyncP.Input() <- msg(i)
	}
	asyncRate = float64(acked.Load()-startAcked) / time.Since(t0).Seconds()
	asyncP.AsyncClose()
	return round(syncRate, 0), round(asyncRate, 0), round(p99ms, 1), nil
}

// orderTimes reads, for each order, when it was created and when it last changed
// (its terminal state, in these runs).
func orderTimes(s *harness.Stack) (map[string][2]time.Time, map[string]string, error) {
	rows, err := s.OrderDB.Query("SELECT id, status, created_at, updated_at FROM orders")
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	times, status := map[string][2]time.Time{}, map[string]string{}
	for rows.Next() {
		var id, st string
		var c, u time.Time
		if err := rows.Scan(&id, &st, &c, &u); err != nil {
			return nil, nil, err
		}
		times[id], status[id] = [2]time.Time{c, u}, st
	}
	return times, status, rows.Err()
}

// stepResult judges one load step: sustained if intake kept up, the server-side
// p99 stayed under a second, and (almost) nothing was left behind 3 s after.
func stepResult(s *harness.Stack, rate float64, d time.Duration, h *harness.History) (Step, error) {
	time.Sleep(3 * time.Second)
	times, status, err := orderTimes(s)
	if err != nil {
		return Step{}, err
	}
	st := Step{Rate: rate}
	var lats []float64
	for _, id := range h.AcceptedIDs() {
		st.Accepted++
		if status[id] == "PENDING" {
			st.Backlog++
			continue
		}
		lats = append(lats, times[id][1].Sub(times[id][0]).Seconds()*1000)
	}
	st.Completed = round(float64(len(lats))/d.Seconds(), 1)
	st.P99Ms = round(percentile(lats, 0.99), 1)
	sent := len(h.Requests)
	st.Sustained = sent > 0 && float64(st.Accepted) >= 0.99*float64(sent) && st.P99Ms < 1000 &&
		float64(st.Backlog) <= 0.01*float64(st.Accepted)
	return st, nil
}

// warmUp runs a few orders end to end, so that the first measured step does not
// pay for consumer-group joins, partition assignment and cold connection pools.
func warmUp(s *harness.Stack) error {
	for range 3 {
		h := load(s, 20, 5*time.Second)
		waitDrained(s, 60*time.Second)
		if len(h.AcceptedIDs()) == 0 {
			return fmt.Errorf("warm-up: no order accepted")
		}
	}
	return nil
}

func waitDrained(s *harness.Stack, limit time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	_ = s.WaitDrained(ctx)
	for ctx.Err() == nil {
		var n int
		if err := s.OrderDB.QueryRow("SELECT COUNT(*) FROM orders WHERE status = 'PENDING'").Scan(&n); err == nil && n == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func throughput(s *harness.Stack, r *Report) error {
	d := 12 * time.Second
	for _, rate := range []float64{25, 50, 100, 150, 200, 250, 300, 350, 400, 500, 600, 700, 800, 1000} {
		h := load(s, rate, d)
		st, err := stepResult(s, rate, d, h)
		if err != nil {
			return err
		}
		say("  %4.0f/s offered: %6.1f/s completed, p99 %7.1f ms, backlog %d, sustained %v", rate, st.Completed, st.P99Ms, st.Backlog, st.Sustained)
		r.Throughput.Steps = append(r.Throughput.Steps, st)
		if !st.Sustained {
			break
		}
		r.Throughput.MaxSustained = st.Completed
		r.Throughput.MaxSustainedOffered = rate
		waitDrained(s, 60*time.Second)
	}
	waitDrained(s, 120*time.Second)
	if r.Throughput.MaxSustained == 0 {
		return fmt.Errorf("not even the lowest step was sustained")
	}
	return nil
}

func latency(s *harness.Stack, r *Report) error {
	rate := r.Throughput.MaxSustainedOffered / 2
	d := 20 * time.Second
	h := load(s, rate, d)
	time.Sleep(3 * time.Second)
	times, _, err := orderTimes(s)
	if err != nil {
		return err
	}
	var server, client, post []float64
	for _, q := range h.Requests {
		if q.Outcome != harness.Accepted {
			continue
		}
		t := times[q.OrderID]
		server = append(server, t[1].Sub(t[0]).Seconds()*1000)
		client = append(client, t[1].Sub(q.SentAt).Seconds()*1000)
		post = append(post, q.Latency.Seconds()*1000)
	}
	r.Latency = Latency{Rate: rate, Orders: len(server),
		ServerP50: round(percentile(server, 0.5), 1), ServerP99: round(percentile(server, 0.99), 1), ServerP999: round(percentile(server, 0.999), 1),
		ClientP50: round(percentile(client, 0.5), 1), ClientP99: round(percentile(client, 0.99), 1), ClientP999: round(percentile(client, 0.999), 1),
		PostP99: round(percentile(post, 0.99), 1)}
	waitDrained(s, 60*time.Second)
	return nil
}

// drain preloads the order outbox with Kafka stopped, starts Kafka and times
// how long the forwarder takes to empty it.
func drain(s *harness.Stack, r *Report) error {
	const n = 3000
	if err := infra.Kill(harness.Kafka); err != nil {
		return err
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	jobs := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if status, _, err := s.PlaceOrder(context.Background(), 0, customers[i%len(customers)], 100, "EUR"); err != nil || status != 201 {
					failed.Add(1)
				}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	var rows int
	if err := s.OrderDB.QueryRow("SELECT COUNT(*) FROM watermill_outbox").Scan(&rows); err != nil {
		return err
	}
	if err := infra.Start(harness.Kafka); err != nil {
		return err
	}
	t0 := time.Now()
	var firstOut time.Duration // until the forwarder's first delete: reconnecting to Kafka
	for start := rows; rows > 0; {
		time.Sleep(20 * time.Millisecond)
		if err := s.OrderDB.QueryRow("SELECT COUNT(*) FROM watermill_outbox").Scan(&rows); err != nil {
			return err
		}
		if firstOut == 0 && rows < start {
			firstOut = time.Since(t0)
		}
		if time.Since(t0) > 3*time.Minute {
			return fmt.Errorf("outbox not drained after 3 minutes: %d rows left", rows)
		}
	}
	el := time.Since(t0)
	r.Drain = Drain{Events: n - int(failed.Load()), Seconds: round(el.Seconds(), 2), ReconnectSec: round(firstOut.Seconds(), 2)}
	r.Drain.Rate = round(float64(r.Drain.Events)/el.Seconds(), 0)
	r.Drain.SteadyRate = round(float64(r.Drain.Events)/(el-firstOut).Seconds(), 0)
	say("  %d events in %.1f s (first forwarded after %.1f s): %.0f/s overall, %.0f/s once connected",
		r.Drain.Events, el.Seconds(), firstOut.Seconds(), r.Drain.Rate, r.Drain.SteadyRate)
	waitDrained(s, 120*time.Second)
	return nil
}

func outage(s *harness.Stack, r *Report) error {
	rate := max(5, r.Throughput.MaxSustainedOffered*0.3)
	before, down, after := 15*time.Second, 60*time.Second, 45*time.Second
	var killedAt, backAt time.Time
	faultErr := make(chan error, 1)
	start := time.Now()
	go func() {
		time.Sleep(before)
		killedAt = time.Now()
		if err := infra.Kill(harness.Kafka); err != nil {
			faultErr <- err
			return
		}
		time.Sleep(down)
		err := infra.Start(harness.Kafka)
		backAt = time.Now()
		faultErr <- err
	}()
	h := load(s, rate, before+down+after)
	if err := <-faultErr; err != nil {
		return err
	}
	waitDrained(s, 120*time.Second)
	times, _, err := orderTimes(s)
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

func consumerOverhead(kafka messaging.KafkaConfig, r *Report) error {
	const n = 3000
	rates := map[string]float64{}
	for _, mode := range []string{"bare", "stack"} {
		topic := "bench-consumer-" + mode + "-" + strings.ToLower(watermill.NewShortUUID()[:6])
		if err := kafka.EnsureTopics(context.Background(), []events.TopicSpec{{Name: topic, Partitions: events.DefaultPartitions}}); err != nil {
			return err
		}
		pub := kafka.NewPublisher(watermill.NopLogger{})
		batch := make([]*message.Message, 0, n)
		for i := range n {
			m, err := events.Encode(events.Event{ID: watermill.NewUUID(), OrderID: watermill.NewUUID(), OrderVersion: 1,
				OccurredAt: time.Now(), Payload: events.OrderPlaced{CustomerID: customers[i%len(customers)], AmountCents: 100, Currency: "EUR"}})
			if err != nil {
				return err
			}
			batch = append(batch, m)
		}
		if err := publishAsync(kafka, topic, batch); err != nil {
			return err
		}
		_ = pub.Close()
		db, err := freshDB(infra.PaymentDBAddr(), "bench_consumer_"+mode)
		if err != nil {
			return err
		}
		db.Close()
		cmd := exec.Command("go", "run", "./services/payment/internal/consumerbench", "-mode", mode, "-brokers", infra.KafkaAddr(),
			"-dsn", harness.DSN(infra.PaymentDBAddr(), "bench_consumer_"+mode), "-topic", topic, "-n", fmt.Sprint(n))
		cmd.Dir = harness.RepoRoot()
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("consumerbench %s: %w", mode, err)
		}
		var res struct {
			Rate float64 `json:"rate_per_s"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			return fmt.Errorf("consumerbench %s said %q: %w", mode, out, err)
		}
		rates[mode] = round(res.Rate, 0)
		say("  %s: %.0f events/s", mode, res.Rate)
	}
	r.Consumer = Consumer{Events: n, StackRate: rates["stack"], BareRate: rates["bare"]}
	return nil
}

// publishAsync preloads a topic quickly, keyed like the services do. Messages
// the batched producer could not deliver (e.g. just after a broker restart) are
// sent again one by one.
func publishAsync(kafka messaging.KafkaConfig, topic string, msgs []*message.Message) error {
	p, err := sarama.NewAsyncProducer(kafka.Brokers, kafka.ProducerConfig())
	if err != nil {
		return err
	}
	marshaler := messaging.Marshaler(true)
	successes, failures := make(chan struct{}), make(chan []*sarama.ProducerMessage)
	go func() {
		for range p.Successes() {
		}
		close(successes)
	}()
	go func() {
		var failed []*sarama.ProducerMessage
		for e := range p.Errors() {
			failed = append(failed, e.Msg)
		}
		failures <- failed
	}()
	for _, m := range msgs {
		km, err := marshaler.Marshal(topic, m)
		if err != nil {
			return err
		}
		p.Input() <- km
	}
	p.AsyncClose()
	<-successes
	failed := <-failures
	if len(failed) == 0 {
		return nil
	}
	say("  %d message(s) not delivered by the batched producer, sending them again", len(failed))
	sp, err := sarama.NewSyncProducer(kafka.Brokers, kafka.ProducerConfig())
	if err != nil {
		return err
	}
	defer sp.Close()
	for _, m := range failed {
		retry := &sarama.ProducerMessage{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: m.Headers}
		if _, _, err := sp.SendMessage(retry); err != nil {
			return err
		}
	}
	return nil
}

func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64{}, xs...)
	sort.Float64s(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[min(i, len(s)-1)]
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if x < 0 {
		return -float64(int64(-x*p+0.5)) / p
	}
	return float64(int64(x*p+0.5)) / p
}
