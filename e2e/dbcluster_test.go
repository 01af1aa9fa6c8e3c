package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
)

// The database-cluster lane (ADR 0060): each service's database a three-node
// Galera cluster behind HAProxy, on servers of its own (harness.DBClusterInfra),
// beside TestFaults and TestStrategies. Its scenarios fail the writer in each
// way a cluster fails, at the cluster scenarios' load (ADR 0045: 20 orders/s,
// 600 accepted), with the suite's checker, and also require that no request is
// answered with a 500 and that the nodes hold the same rows afterwards. The
// negative control then runs each database as a primary with an asynchronous
// replica on the same ports and fails over as a naive failover does.
const (
	dbClusterRate        = 20
	dbClusterMinAccepted = 600
	// allDBClusterScenarios, as SCENARIO, selects the lane: its scenarios and
	// the asynchronous-failover controls.
	allDBClusterScenarios = "dbcluster"
)

// dbLane is what the lane's database servers are: mode 0 (none yet), 3 (the
// Galera clusters) or 2 (the primary/replica pairs of the controls); they
// share the lane's ports and its Kafka, so one set runs at a time.
var dbLane struct {
	sync.Mutex
	mode    int
	err     error
	started time.Time
}

// dbClusterServers starts the lane's Galera clusters if they do not run
// (Galera's first start copies the bootstrap node to the two others: about
// 25 s per cluster) and returns them with every node Synced; TestMain stops them.
func dbClusterServers(t *testing.T) *harness.Infra {
	t.Helper()
	dbLane.Lock()
	defer dbLane.Unlock()
	i := harness.DBClusterInfra()
	if dbLane.started.IsZero() {
		dbLane.started = time.Now()
	}
	if dbLane.mode != 3 && dbLane.err == nil {
		start := time.Now()
		if dbLane.err = stopLaneDBs(i); dbLane.err == nil {
			dbLane.err = i.Up()
		}
		if dbLane.err == nil {
			dbLane.mode = 3
			fmt.Printf("e2e: database clusters up in %s\n", time.Since(start).Round(time.Millisecond))
		}
	}
	if dbLane.err != nil {
		testenv.Missing(t, "the e2e database clusters", dbLane.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := i.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	return i
}

// stopLaneDBs stops every database server of the lane, of either mode
// (Kafka keeps running).
func stopLaneDBs(i *harness.Infra) error {
	servers := []string{harness.OrderDB + "-proxy", harness.PaymentDB + "-proxy"}
	for _, db := range []string{harness.OrderDB, harness.PaymentDB} {
		servers = append(servers, harness.DBPrimary(db), harness.DBReplica(db))
		for n := 1; n <= 3; n++ {
			servers = append(servers, harness.DBNode(db, n))
		}
	}
	return i.Run(append([]string{"stop"}, servers...)...)
}

// stopDBCluster stops the lane's servers if it started any.
func stopDBCluster() {
	if dbLane.mode != 0 && os.Getenv("ONCEFLOW_E2E_KEEP_INFRA") != "1" {
		_ = harness.DBClusterInfra().Down()
	}
}

// TestDBCluster is the database-cluster lane: the facts about Galera the code
// relies on, the cluster's fault scenarios, then the asynchronous-failover
// controls. SCENARIO=dbcluster runs all of it, SCENARIO=<name> one scenario or
// control; the reports join build/e2e/report.json.
func TestDBCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite: skipped with -short")
	}
	// Beside TestFaults and TestStrategies, on servers of its own (ADR 0050).
	t.Parallel()
	longLane(t)
	seed := suiteSeed(t)
	only := os.Getenv("SCENARIO")
	if only != "" && !isDBLane(only) {
		return // a scenario or strategy of the other lanes
	}
	all := only == "" || only == allDBClusterScenarios
	if all || only == "galera-facts" {
		t.Run("galera-facts", func(t *testing.T) { galeraFacts(t, dbClusterServers(t)) })
	}
	for _, sc := range dbClusterScenarios() {
		if !all && only != sc.name {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			runClean(t, sc, seed)
		})
	}
	for _, c := range asyncFailoverControls() {
		if !all && only != c.name {
			continue
		}
		t.Run(c.name, func(t *testing.T) { runAsyncFailover(t, c, seed) })
	}
	if !dbLane.started.IsZero() {
		t.Logf("the lane took %s", time.Since(dbLane.started).Round(time.Second))
	}
}

// isDBLane reports whether name (SCENARIO) selects something of this lane.
func isDBLane(name string) bool {
	if name == allDBClusterScenarios || name == "galera-facts" {
		return true
	}
	for _, sc := range dbClusterScenarios() {
		if sc.name == name {
			return true
		}
	}
	for _, c := range asyncFailoverControls() {
		if c.name == name {
			return true
		}
	}
	return false
}

// dbClusterScenarios are the failures of a Galera cluster under load.
func dbClusterScenarios() []scenario {
	sc := func(name string, duration time.Duration, timeline func(f *faultRun) error) scenario {
		return scenario{name: name, servers: dbClusterServers, rate: dbClusterRate, duration: duration,
			minAccepted: dbClusterMinAccepted, noServerErrors: true, faults: timeline, after: nodesAgree}
	}
	return []scenario{
		// kill -9 the node each proxy writes to (order-db at 8 s, payment-db at
		// 12 s): the other two evict it once its group connections are gone,
		// HAProxy sees a refused connection, marks it down and sends everything
		// to a backup node; restarted 15 s later, it rejoins by IST and does not
		// take the writes back.
		sc("kill-db-writer", 40*time.Second, func(f *faultRun) error {
			return f.eachWriter(8*time.Second, 4*time.Second, func(db, writer string) error {
				return f.outage("kill -9 "+writer+" (the "+db+" writer)", 15*time.Second,
					func() error { return f.infra.Kill(writer) }, func() error { return f.infra.Start(writer) })
			})
		}),
		// SIGSTOP each writer for 20 s (a stuck disk, a long pause): it keeps its
		// sockets, so commits stall until the other two evict it (evs.suspect_timeout,
		// 5 s) and HAProxy's checks time out and move the writes; on SIGCONT it
		// finds itself outside the primary component and rejoins by IST.
		sc("pause-db-writer", 40*time.Second, func(f *faultRun) error {
			return f.eachWriter(8*time.Second, 4*time.Second, func(db, writer string) error {
				return f.outage("SIGSTOP "+writer+" (the "+db+" writer)", 20*time.Second,
					func() error { return f.infra.Pause(writer) }, func() error { return f.infra.Resume(writer) })
			})
		}),
		// Cut each writer off from its two peers for 20 s (nftables drops their
		// replication traffic; clients still reach it): alone it is a minority,
		// leaves the primary component and refuses every query (1047) instead of
		// taking writes the majority cannot see; HAProxy's check sees it and
		// moves the writes to the majority. Healed, it rejoins by IST.
		sc("isolate-db-writer", 40*time.Second, func(f *faultRun) error {
			return f.eachWriter(8*time.Second, 4*time.Second, func(db, writer string) error {
				return f.outage("isolate "+writer+" (the "+db+" writer) from its peers", 20*time.Second,
					func() error { return f.infra.Isolate(writer) }, func() error { return f.infra.Heal(writer) })
			})
		}),
		// Restart every node of both clusters one after the other (an upgrade):
		// SIGTERM, start, and Synced again by IST before the next.
		sc("rolling-db-restart", 45*time.Second, rollingDBRestart),
		// kill -9 two of each cluster's three nodes for 20 s: the survivor has
		// no majority and refuses every query, so order intake answers 503 and
		// the payment consumer waits; when the two are started again, infra.sh
		// restarts the cluster from its most advanced node (a survivor may lack
		// the last commit the writer acknowledged).
		func() scenario {
			s := sc("lose-db-quorum", 45*time.Second, func(f *faultRun) error {
				return f.eachWriter(8*time.Second, 4*time.Second, func(db, writer string) error {
					two := []string{writer}
					for _, node := range f.infra.NodesOf(db) {
						if node != writer {
							two = append(two, node)
							break
						}
					}
					return f.outage(fmt.Sprintf("kill -9 %s and %s (2 of 3 %s nodes)", two[0], two[1], db), 20*time.Second,
						func() error { return f.infra.Kill(two...) }, func() error { return f.restartFromMostAdvanced(two...) })
				})
			})
			// Intake is refused from the kill until the restarted cluster is
			// Primary: 20 s, then 15-40 s for the restart. 25 attempts retry
			// for about 85 s, so that the order of a request cut off by the
			// kill gets its 201 once the cluster is back.
			s.maxAttempts = 25
			s.expect = func(r *harness.Report) []string {
				if r.Refused == 0 {
					return []string{"no request was answered 503 while the order database had no majority"}
				}
				return nil
			}
			return s
		}(),
	}
}

// restartFromMostAdvanced starts the killed nodes of a cluster that lost
// its quorum and requires that infra.sh restarted the cluster from its most
// advanced node (it logs every node's position), not into the survivor.
func (f *faultRun) restartFromMostAdvanced(nodes ...string) error {
	out, err := f.infra.Output(append([]string{"start"}, nodes...)...)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "positions") {
			f.t.Log(strings.TrimSpace(line))
			return nil
		}
	}
	return fmt.Errorf("starting %s did not restart the cluster from its most advanced node:\n%s", strings.Join(nodes, " "), out)
}

// eachWriter runs fail for the order database's writer at first, then for the
// payment database's at first+gap, concurrently, and returns the first error.
func (f *faultRun) eachWriter(first, gap time.Duration, fail func(db, writer string) error) error {
	errs := make(chan error, 2)
	for i, db := range []string{harness.OrderDB, harness.PaymentDB} {
		go func() {
			f.sleepUntil(first + time.Duration(i)*gap)
			writer, err := f.infra.Writer(db)
			if err == nil {
				err = fail(db, writer)
			}
			errs <- err
		}()
	}
	return cmpErr(<-errs, <-errs)
}

func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// rollingDBRestart restarts node 1, 2, 3 of both clusters (the two clusters at
// once), each stopped gracefully and started again, waiting until it is Synced.
// A node that needed a full copy (SST) instead of IST fails the timeline.
func rollingDBRestart(f *faultRun) error {
	f.sleepUntil(5 * time.Second)
	for n := 1; n <= 3; n++ {
		errs := make(chan error, 2)
		for _, db := range []string{harness.OrderDB, harness.PaymentDB} {
			go func() {
				node := harness.DBNode(db, n)
				offset := f.infra.LogSize(node)
				errs <- f.outage("restart "+node+" (stop, start, Synced by IST)", 0,
					func() error { return f.infra.Stop(node) },
					func() error {
						if err := f.infra.Start(node); err != nil {
							return err
						}
						log, err := f.infra.LogSince(node, offset)
						if err != nil {
							return err
						}
						if !strings.Contains(log, "IST received") {
							return fmt.Errorf("%s rejoined without IST (a full copy?); see %s", node, filepath.Join(f.infra.Dir, node, node+".log"))
						}
						return nil
					})
			}()
		}
		if err := cmpErr(<-errs, <-errs); err != nil {
			return err
		}
		time.Sleep(2 * time.Second)
	}
	return nil
}

// nodesAgree is the lane's check after a scenario settled: every node of each
// cluster holds the same rows in every table of the stack's database (CHECKSUM
// TABLE on each node, directly), so no write survived on a node that was cut
// off or paused (no split brain). It waits up to 30 s for the nodes to be
// Synced, and compares three times a second apart before it reports a
// difference (a job of a service may write between two nodes' checksums).
func nodesAgree(f *faultRun) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.infra.WaitSynced(ctx); err != nil {
		return []string{"after the scenario: " + err.Error()}
	}
	var problems []string
	for _, db := range []struct {
		server string
		pool   *sql.DB
	}{{harness.OrderDB, f.s.OrderDB}, {harness.PaymentDB, f.s.PaymentDB}} {
		var name string
		if err := db.pool.QueryRow("SELECT DATABASE()").Scan(&name); err != nil {
			return append(problems, err.Error())
		}
		var differ string
		for try := 0; try < 3; try++ {
			if try > 0 {
				time.Sleep(time.Second)
			}
			sums, err := nodeChecksums(ctx, f.infra, db.server, name)
			if err != nil {
				return append(problems, err.Error())
			}
			if differ = ""; !allEqual(sums) {
				differ = "the nodes of " + db.server + " hold different rows (split brain?):\n    " + strings.Join(sums, "\n    ")
			} else {
				break
			}
		}
		if differ != "" {
			problems = append(problems, differ)
		}
	}
	return problems
}

// nodeChecksums returns "node: table=checksum ..." for each node of db.
func nodeChecksums(ctx context.Context, infra *harness.Infra, db, name string) ([]string, error) {
	var sums []string
	for _, node := range infra.NodesOf(db) {
		sum, err := tableChecksums(ctx, infra, node, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", node, err)
		}
		sums = append(sums, node+": "+sum)
	}
	return sums, nil
}

// allEqual reports whether every "node: checksums" line has the same checksums.
func allEqual(sums []string) bool {
	_, first, _ := strings.Cut(sums[0], ": ")
	for _, s := range sums[1:] {
		if _, sum, _ := strings.Cut(s, ": "); sum != first {
			return false
		}
	}
	return true
}

// tableChecksums returns "table=checksum ..." of every table of database name
// on one node, once the node has applied everything the cluster committed
// before the call (wsrep_sync_wait).
func tableChecksums(ctx context.Context, infra *harness.Infra, node, name string) (string, error) {
	pool, err := infra.NodeDB(node, name)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	conn, err := pool.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION wsrep_sync_wait = 1"); err != nil {
		return "", err
	}
	rows, err := conn.QueryContext(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name", name)
	if err != nil {
		return "", err
	}
	var tables []string
	for rows.Next() {
		var tbl string
		if err := rows.Scan(&tbl); err != nil {
			rows.Close()
			return "", err
		}
		tables = append(tables, tbl)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return "", err
	}
	rows.Close()
	slices.Sort(tables)
	var out []string
	for _, tbl := range tables {
		var table string
		var sum sql.NullInt64
		if err := conn.QueryRowContext(ctx, "CHECKSUM TABLE `"+tbl+"`").Scan(&table, &sum); err != nil {
			return "", err
		}
		out = append(out, fmt.Sprintf("%s=%d", tbl, sum.Int64))
	}
	return strings.Join(out, " "), nil
}
