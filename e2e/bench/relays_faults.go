//go:build faults

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/outbox/parking"
	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

const (
	// relayRounds is how many rounds each relay runs, alternating.
	relayRounds = 3
	// relayLatencyFor is how long each round writes at half the relay's rate.
	relayLatencyFor = 6 * time.Second
	// relayWarmupEvents is the size of each relay's warm-up round.
	relayWarmupEvents = 10_000
	// relayLatencyCap bounds that rate: above it the writers (one event per
	// transaction) would measure themselves, not the relay.
	relayLatencyCap = 800.0
)

// relayLane is one relay under test.
type relayLane struct {
	name string
	// events is how many events a drain round preloads: the stock relay is
	// given fewer, so that its rounds end in seconds too.
	events int
	faults outbox.Faults
	// pendingSQL counts what the relay still has to send (one statement).
	pendingSQL string
	// mayLose is true for the stock relay, known to skip a row that commits
	// after a higher offset was relayed (docs/relays.md): its losses are
	// counted. Any other relay that loses an event fails the phase.
	mayLose bool
	// tailing: the relay is Debezium's connector in Kafka Connect (the server
	// harness.Connect), reading the binary log; the bench writes with
	// outbox.NewForLogTailing and counts what reached the topic.
	tailing bool
}

var relayLanes = []relayLane{
	{laneOnceflow, 20_000, outbox.Faults{}, "SELECT COUNT(*) FROM `" + outbox.Table + "`", false, false},
	{laneStock, 2_000, outbox.Faults{StockRelay: true}, "SELECT COALESCE((SELECT MAX(`offset`) FROM `watermill_forwarder_topic`), 0)" +
		" - COALESCE((SELECT MAX(offset_acked) FROM `watermill_offsets_forwarder_topic`), 0)", true, false},
	{laneDebezium, 20_000, outbox.Faults{}, "", false, true},
}

// relaysInfra is the relays phase's servers: one MariaDB writing a binary log
// and one Kafka for every relay, and Kafka Connect with Debezium's connector
// (harness.DebeziumInfra's set, on ports of its own). Every relay pays for
// the binary log here, so that all run on the same database.
var relaysInfra = &harness.Infra{
	Dir:         filepath.Join(outDir, "infra-relays"),
	OrderDBPort: 26307, PaymentDBPort: 26308, KafkaPort: 26092, KafkaControllerPort: 26093,
	OrderOutboxRelay: "debezium", ConnectPort: 26083, ConnectDatabases: tailingDB,
}

// tailingDB is the database the Debezium lane writes to, the only one its
// connector relays: the polling relays' rows (in another database of the same
// server) are not sent twice. The connector keeps running during their rounds,
// reading past their part of the binary log, as it would in production.
const tailingDB = "bench_tailing"

// relays measures each relay of relayLanes on one fresh database of the order
// MariaDB, in alternating rounds, in this process (a relay is a forwarder
// built as the order service builds it): the drain rate of a preloaded
// outbox, the commit→Kafka latency at half that rate, CPU and statements per
// event; and the raw produce baseline on the same Kafka.
func (b *bench) relays(ctx context.Context, r *Report) error {
	say("relays: %d alternating rounds of %d relays, on servers of their own (%s)", relayRounds, len(relayLanes), relaysInfra.Dir)
	if err := relaysInfra.Up(); err != nil {
		return err
	}
	defer func() {
		if err := relaysInfra.Down(); err != nil {
			say("relays: stopping the servers: %v", err)
		}
	}()
	cfg, kc, db, err := outboxBenchOn(ctx, relaysInfra, "bench_relays", outbox.StockMigrations)
	if err != nil {
		return err
	}
	defer db.Close()
	_, _, tailDB, err := outboxBenchOn(ctx, relaysInfra, tailingDB)
	if err != nil {
		return err
	}
	defer tailDB.Close()
	rel := Relays{Rounds: relayRounds}
	if rel.ProduceSync, rel.ProduceAsync, _, err = kafkaBaselines(ctx, kc); err != nil {
		return fmt.Errorf("raw produce baseline: %w", err)
	}
	say("  raw produce: %.0f/s sync, %.0f/s async", rel.ProduceSync, rel.ProduceAsync)
	// One round per relay first, not measured: Kafka Connect's JVM (Debezium)
	// drains its first round at half the rate of its third, compiling as it
	// goes; a relay in production runs warm.
	for _, l := range relayLanes {
		on := db
		if l.tailing {
			on = tailDB
		}
		warm := l
		warm.events = min(l.events, relayWarmupEvents)
		if _, err := relayRound(ctx, on, kc, cfg, warm); err != nil {
			return fmt.Errorf("%s, warm-up round: %w", l.name, err)
		}
	}
	say("  warm-up rounds done")
	rounds := map[string][]RelayLane{}
	for round := range relayRounds {
		for _, l := range relayLanes {
			on := db
			if l.tailing {
				on = tailDB
			}
			res, err := relayRound(ctx, on, kc, cfg, l)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", l.name, round+1, err)
			}
			say("  %s round %d: %.0f events/s (first after %.2f s); p50 %.1f / p99 %.1f ms at %.0f/s; CPU-ms/event relay %.3f, MariaDB %.3f; %.2f statements/event; %d lost",
				l.name, round+1, res.EventsPerS, res.StartS, res.P50Ms, res.P99Ms, res.LatencyRate, res.RelayCPUMs, res.DBCPUMs, res.Statements, res.Lost)
			rounds[l.name] = append(rounds[l.name], res)
		}
	}
	for _, l := range relayLanes {
		rs := rounds[l.name]
		med := func(f func(RelayLane) float64) float64 {
			xs := make([]float64, len(rs))
			for i, x := range rs {
				xs[i] = f(x)
			}
			return median(xs)
		}
		lost := 0
		for _, x := range rs {
			lost += x.Lost
		}
		rel.Lanes = append(rel.Lanes, RelayLane{Name: l.name, Events: l.events,
			EventsPerS:       round(med(func(x RelayLane) float64 { return x.EventsPerS }), 0),
			StartS:           round(med(func(x RelayLane) float64 { return x.StartS }), 2),
			LatencyRate:      round(med(func(x RelayLane) float64 { return x.LatencyRate }), 0),
			P50Ms:            round(med(func(x RelayLane) float64 { return x.P50Ms }), 1),
			P99Ms:            round(med(func(x RelayLane) float64 { return x.P99Ms }), 1),
			RelayCPUMs:       round(med(func(x RelayLane) float64 { return x.RelayCPUMs }), 3),
			DBCPUMs:          round(med(func(x RelayLane) float64 { return x.DBCPUMs }), 3),
			Statements:       round(med(func(x RelayLane) float64 { return x.Statements }), 2),
			Lost:             lost,
			BinlogBytes:      round(med(func(x RelayLane) float64 { return x.BinlogBytes }), 0),
			WriteStatements:  round(med(func(x RelayLane) float64 { return x.WriteStatements }), 2),
			WriteBinlogBytes: round(med(func(x RelayLane) float64 { return x.WriteBinlogBytes }), 0),
		})
	}
	r.Relays = rel
	return nil
}

// relayRound runs one round of lane l on a topic of its own: the drain of
// l.events preloaded events, then the latency at half the drain rate.
func relayRound(ctx context.Context, db *sql.DB, kc kafka.Config, cfg servicemain.Messaging, l relayLane) (RelayLane, error) {
	res := RelayLane{Name: l.name, Events: l.events}
	topic := "bench-relays-" + strings.ToLower(watermill.NewShortUUID()[:6])
	// The broker stamps each record when it appends it: the end of commit→Kafka.
	spec := kafka.TopicSpec{Name: topic, Partitions: events.DefaultPartitions, Config: map[string]string{"message.timestamp.type": "LogAppendTime"}}
	if err := kc.EnsureTopics(ctx, []kafka.TopicSpec{spec}); err != nil {
		return res, err
	}
	defer deleteTopic(kc, topic)
	if err := waitLeaders(ctx, kc, topic, events.DefaultPartitions); err != nil {
		return res, err
	}
	var relay relayUnderTest
	var err error
	if l.tailing {
		relay, err = startDebezium(ctx, kc, topic)
	} else {
		relay, err = startForwarder(db, kc, cfg, l)
	}
	if err != nil {
		return res, err
	}
	defer relay.stop()
	// What the writers pay for the relay shows in the preload: Debezium's
	// delete in each writing transaction, and its row image in the log.
	preload, err := sampleRelay(ctx, db, relay.pid)
	if err != nil {
		return res, err
	}
	if err := fillOutbox(ctx, db, relay.outbox, topic, l.events); err != nil {
		return res, fmt.Errorf("preloading the outbox: %w", err)
	}
	before, err := sampleRelay(ctx, db, relay.pid)
	if err != nil {
		return res, err
	}
	res.WriteStatements = float64(before.statements-preload.statements) / float64(l.events)
	res.WriteBinlogBytes = float64(before.binlog-preload.binlog) / float64(l.events)
	t0 := time.Now()
	if err := relay.start(); err != nil {
		return res, err
	}
	polls, err := relay.wait(ctx, l.events)
	if err != nil {
		return res, err
	}
	done := time.Now()
	after, err := sampleRelay(ctx, db, relay.pid)
	if err != nil {
		return res, err
	}
	n := float64(l.events)
	res.RelayCPUMs = float64(after.self-before.self) / clockTicks * 1000 / n
	res.DBCPUMs = float64(after.db-before.db) / clockTicks * 1000 / n
	res.Statements = float64(after.statements-before.statements-int64(polls)) / n
	res.BinlogBytes = float64(after.binlog-before.binlog) / n
	drained, err := appendTimes(ctx, kc, topic)
	if err != nil {
		return res, err
	}
	// The drain rate counts from the first record in Kafka: a relay's start
	// (Debezium's task connecting to the binary log) is StartS.
	first := done
	for _, at := range drained {
		first = minTime(first, at)
	}
	res.StartS = max(0, first.Sub(t0).Seconds())
	res.EventsPerS = n / max(done.Sub(first).Seconds(), 0.001)

	res.LatencyRate = min(res.EventsPerS/2, relayLatencyCap)
	committed, err := writePaced(ctx, db, relay.outbox, topic, res.LatencyRate, relayLatencyFor)
	if err != nil {
		return res, err
	}
	if _, err := relay.wait(ctx, l.events+len(committed)); err != nil {
		return res, err
	}
	appended, err := appendTimes(ctx, kc, topic)
	if err != nil {
		return res, err
	}
	res.Lost = max(0, l.events+len(committed)-len(appended))
	if res.Lost > 0 && !l.mayLose {
		return res, fmt.Errorf("%s holds %d distinct events, want %d", topic, len(appended), l.events+len(committed))
	}
	var lat []float64
	for id, c := range committed {
		if a, ok := appended[id]; ok { // a lost one has no latency
			lat = append(lat, float64(a.Sub(c).Microseconds())/1000)
		}
	}
	res.P50Ms, res.P99Ms = percentile(lat, 0.50), percentile(lat, 0.99)
	return res, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// relayUnderTest is one round's relay: the outbox it reads, the process whose
// CPU is its own, and how to start it, wait for it and stop it.
type relayUnderTest struct {
	outbox *outbox.Outbox
	pid    int
	start  func() error
	// wait returns once the relay has sent want events of the round (or has
	// nothing left to send), with the number of progress queries it ran on
	// the database.
	wait func(ctx context.Context, want int) (polls int, err error)
	stop func()
}

// startForwarder builds lane l's forwarder as the order service builds it,
// in this process; start runs it.
func startForwarder(db *sql.DB, kc kafka.Config, cfg servicemain.Messaging, l relayLane) (relayUnderTest, error) {
	wlog := watermill.NewSlogLogger(slog.New(slog.DiscardHandler))
	out := kc.NewPublisher(wlog)
	ob := outbox.New()
	parked, err := parking.New(parking.Config{DB: db, Outbox: ob, Logger: wlog})
	if err != nil {
		out.Close()
		return relayUnderTest{}, err
	}
	fc := cfg.Outbox
	fc.DB, fc.Publisher, fc.Logger, fc.Outbox, fc.Breaker, fc.Parking = db, out, wlog, ob, cfg.Breaker, parked.Publisher
	// Built before the preload: the stock relay's option also sets where ob writes.
	fwd, err := outbox.NewForwarder(fc, outbox.WithFaults(l.faults, slog.New(slog.DiscardHandler)))
	if err != nil {
		out.Close()
		return relayUnderTest{}, err
	}
	runErr := make(chan error, 1)
	started := false
	return relayUnderTest{outbox: ob, pid: os.Getpid(),
		start: func() error {
			started = true
			go func() { runErr <- fwd.Run(context.Background()) }()
			return nil
		},
		wait: func(ctx context.Context, _ int) (int, error) { return waitRelayed(ctx, db, l, runErr) },
		stop: func() {
			if started {
				_ = fwd.Close()
				fwd.Abandon()
				<-runErr
			}
			out.Close()
		},
	}, nil
}

// startDebezium stops the connector of relaysInfra, so that the preload
// waits in the binary log; start resumes it.
func startDebezium(ctx context.Context, kc kafka.Config, topic string) (relayUnderTest, error) {
	pid, err := relaysInfra.PID(harness.Connect)
	if err != nil {
		return relayUnderTest{}, err
	}
	if err := relaysInfra.StopConnector(ctx); err != nil {
		return relayUnderTest{}, err
	}
	return relayUnderTest{outbox: outbox.NewForLogTailing(), pid: pid,
		start: func() error { return relaysInfra.ResumeConnector(ctx) },
		wait:  func(ctx context.Context, want int) (int, error) { return 0, waitTopic(ctx, kc, topic, want) },
		stop: func() {
			if err := relaysInfra.ResumeConnector(context.WithoutCancel(ctx)); err != nil {
				say("relays: resuming the connector: %v", err)
			}
		},
	}, nil
}

// waitTopic waits until topic holds want records, or forwarderLimit.
func waitTopic(ctx context.Context, kc kafka.Config, topic string, want int) error {
	start := time.Now()
	for {
		n, err := testenv.MessageCount(kc, topic)
		if err == nil && n >= int64(want) {
			return nil
		}
		if time.Since(start) > forwarderLimit {
			return errors.Join(fmt.Errorf("%s holds %d of %d records after %s", topic, n, want, forwarderLimit), err)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitRelayed waits until l's relay has nothing left to send and returns how
// many progress queries it ran; it fails if the forwarder stopped or after
// forwarderLimit.
func waitRelayed(ctx context.Context, db *sql.DB, l relayLane, runErr chan error) (polls int, err error) {
	start := time.Now()
	for {
		var left int64
		if err := db.QueryRowContext(ctx, l.pendingSQL).Scan(&left); err != nil {
			return polls, err
		}
		polls++
		if left == 0 {
			return polls, nil
		}
		select {
		case err := <-runErr:
			runErr <- err // for the deferred stop
			return polls, fmt.Errorf("relay stopped with %d left: %w", left, err)
		default:
		}
		if time.Since(start) > forwarderLimit {
			return polls, fmt.Errorf("%d left after %s", left, forwarderLimit)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return polls, err
		}
	}
}

// relaySample is what a relay's work is measured by: CPU ticks of the
// relay's process (this one, or Kafka Connect's) and of MariaDB, MariaDB's statement counters and binary
// log bytes.
type relaySample struct {
	self, db, statements, binlog int64
}

func sampleRelay(ctx context.Context, db *sql.DB, relayPID int) (relaySample, error) {
	var s relaySample
	var err error
	if s.self, err = procTicks(relayPID); err != nil {
		return s, err
	}
	pid, err := relaysInfra.PID(harness.OrderDB)
	if err != nil {
		return s, err
	}
	if s.db, err = procTicks(pid); err != nil {
		return s, err
	}
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN "+
		"('Com_select','Com_insert','Com_update','Com_delete','Com_commit','Com_rollback','Binlog_bytes_written')")
	if err != nil {
		return s, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			return s, err
		}
		if name == "Binlog_bytes_written" {
			s.binlog = v
		} else {
			s.statements += v
		}
	}
	return s, rows.Err()
}

// procTicks is the CPU time (clock ticks) process pid used so far.
func procTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(string(data))
}

// writePaced commits one OrderPlaced event per transaction through ob at rate
// per second for d and returns when each committed (by event id).
func writePaced(ctx context.Context, db *sql.DB, ob *outbox.Outbox, topic string, rate float64, d time.Duration) (map[string]time.Time, error) {
	n := int(rate * d.Seconds())
	committed := make(map[string]time.Time, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	start := time.Now()
	for i := range n {
		if err := sleep(ctx, time.Until(start.Add(time.Duration(float64(i)/rate*float64(time.Second))))); err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := events.Event{ID: watermill.NewUUID(), OrderID: watermill.NewUUID(), OrderVersion: 1, OccurredAt: time.Now().UTC(),
				Payload: events.OrderPlaced{CustomerID: customers[i%len(customers)], Amount: events.Money{MinorUnits: 100, Currency: "EUR"}}}
			err := sqldb.InTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error { return events.Write(ctx, ob, tx, topic, e) })
			at := time.Now()
			if err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
			mu.Lock()
			committed[e.ID] = at
			mu.Unlock()
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return committed, nil
}

// appendTimes reads every record of topic and returns each one's Kafka
// timestamp by Watermill message UUID.
func appendTimes(ctx context.Context, kc kafka.Config, topic string) (map[string]time.Time, error) {
	client, err := sarama.NewClient(kc.Brokers, kc.ConsumerConfig())
	if err != nil {
		return nil, err
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, err
	}
	times := map[string]time.Time{}
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		for done := false; !done; {
			select {
			case m := <-pc.Messages():
				for _, h := range m.Headers {
					if string(h.Key) == "_watermill_message_uuid" {
						times[string(h.Value)] = m.Timestamp
					}
				}
				done = m.Offset >= end-1
			case <-time.After(30 * time.Second):
				pc.Close()
				return nil, fmt.Errorf("partition %d of %s: no record for 30 s", p, topic)
			case <-ctx.Done():
				pc.Close()
				return nil, ctx.Err()
			}
		}
		pc.Close()
	}
	return times, nil
}
