package e2e

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
)

// The cluster scenarios run on a three-node Kafka cluster
// (harness.ClusterInfra: RF 3, min.insync.replicas=2, no unclean election),
// started once for all of them. Three JVMs, two MariaDB and the services share
// two cores, and the four together must stay within about five minutes of
// `make test`: they run at 20 orders/s for 40-45 s and need 600 accepted orders
// instead of the single-node scenarios' 1,000.
const (
	clusterRate        = 20
	clusterMinAccepted = 600
	// allClusterScenarios, as SCENARIO, selects the four cluster scenarios.
	allClusterScenarios = "cluster"
)

var (
	clusterOnce sync.Once
	cluster     *harness.Infra
	clusterErr  error
)

// clusterInfra starts the cluster's servers the first time a cluster scenario
// needs them; TestMain stops them (stopCluster).
func clusterInfra(t *testing.T) *harness.Infra {
	t.Helper()
	clusterOnce.Do(func() {
		start := time.Now()
		cluster = harness.ClusterInfra()
		if clusterErr = cluster.Up(); clusterErr == nil {
			fmt.Printf("e2e: three-node Kafka cluster up in %s\n", time.Since(start).Round(time.Millisecond))
		}
	})
	if clusterErr != nil {
		testenv.Missing(t, "the e2e Kafka cluster", clusterErr)
	}
	return cluster
}

// stopCluster stops the cluster's servers if a scenario started them.
func stopCluster() {
	if cluster != nil && clusterErr == nil && os.Getenv("ONCEFLOW_E2E_KEEP_INFRA") != "1" {
		_ = cluster.Down()
	}
}

// clusterScenarios are the faults of a replicated Kafka: a partition leader
// killed, a leader paused, the majority lost, every broker restarted in turn.
func clusterScenarios() []scenario {
	return []scenario{
		// kill -9 the broker that leads the most `orders` partitions; the
		// controller moves leadership to the in-sync followers (nothing acked is
		// lost: acks=all waited for two replicas); restarted 20 s later it
		// catches up and rejoins the ISR.
		{name: "kill-partition-leader", cluster: true, rate: clusterRate, duration: 40 * time.Second,
			minAccepted: clusterMinAccepted, faults: func(f *faultRun) error {
				return f.leaderOutage(f.s.Topics.Orders, "kill -9", 20*time.Second,
					func(n string) error { return f.infra.Kill(n) }, func(n string) error { return f.infra.Start(n) })
			}},
		// SIGSTOP the leader of the most `payments` partitions for 20 s (a long GC
		// pause, a hung disk): its session expires after 3 s, the controller
		// fences it and elects other leaders; clients with requests in flight to
		// it wait for their timeouts. SIGCONT: it finds itself fenced and rejoins.
		{name: "pause-leader", cluster: true, rate: clusterRate, duration: 40 * time.Second,
			minAccepted: clusterMinAccepted, faults: func(f *faultRun) error {
				return f.leaderOutage(f.s.Topics.Payments, "SIGSTOP", 20*time.Second, f.infra.Pause, f.infra.Resume)
			}},
		// kill -9 two of three brokers for 30 s: no partition has two replicas in
		// sync, so no write is acknowledged (NOT_ENOUGH_REPLICAS or a timeout,
		// both retriable) and the controller quorum (3 voters) has lost its
		// majority, so nothing changes leader either. Orders are still accepted
		// over HTTP: they wait in the outbox until the two come back.
		{name: "lose-quorum", cluster: true, rate: clusterRate, duration: 45 * time.Second,
			minAccepted: clusterMinAccepted, faults: func(f *faultRun) error {
				f.sleepUntil(8 * time.Second)
				node, _, err := f.infra.LeaderOfMost(f.s.Topics.Orders)
				if err != nil {
					return err
				}
				other := "kafka-1"
				if node == other {
					other = "kafka-2"
				}
				return f.outage(fmt.Sprintf("kill -9 %s and %s (2 of 3 brokers)", node, other), 30*time.Second,
					func() error { return f.infra.Kill(node, other) }, func() error { return f.infra.Start(node, other) })
			}},
		// Restart the brokers one after the other like an upgrade: SIGTERM (a
		// controlled shutdown moves its leaderships away first), start, and wait
		// until every replica of the event topics and of the offsets topic is in
		// sync again before the next.
		{name: "rolling-broker-restart", cluster: true, rate: clusterRate, duration: 45 * time.Second,
			minAccepted: clusterMinAccepted, faults: func(f *faultRun) error {
				f.sleepUntil(5 * time.Second)
				for id := int32(1); id <= 3; id++ {
					node := f.infra.KafkaNode(id)
					err := f.outage("restart "+node+" (stop, start, wait for the ISR)", 0,
						func() error { return f.infra.Stop(node) },
						func() error {
							if err := f.infra.Start(node); err != nil {
								return err
							}
							ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
							defer cancel()
							return f.infra.WaitInSync(ctx, f.s.Topics.Orders, f.s.Topics.Payments, harness.OffsetsTopic)
						})
					if err != nil {
						return err
					}
					time.Sleep(2 * time.Second)
				}
				return nil
			}},
	}
}

// leaderOutage waits until 8 s into the load, finds the Kafka node that leads
// the most partitions of topic, breaks it (what names how), repairs it d later,
// and records it.
func (f *faultRun) leaderOutage(topic, what string, d time.Duration, breakIt, repair func(node string) error) error {
	f.sleepUntil(8 * time.Second)
	node, n, err := f.infra.LeaderOfMost(topic)
	if err != nil {
		return err
	}
	return f.outage(fmt.Sprintf("%s %s (leader of %d/%d partitions of %s)", what, node, n, events.DefaultPartitions, topic), d,
		func() error { return breakIt(node) }, func() error { return repair(node) })
}
