package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
)

// asyncFailover is a run of the lane's second set-up (ADR 0060): each database
// a primary with one replica (infra.sh's DB_NODES=2, behind the same proxy,
// which routes to whichever is writable), the order database's primary killed
// under load and its replica promoted.
type asyncFailover struct {
	name string
	// semisync: the primary commits only once the replica has the transaction
	// in its relay log (AFTER_SYNC), and the promotion applies that relay log
	// before it takes writes. Without it, replication is asynchronous and the
	// promotion is the naive one: stop replicating, take writes.
	semisync bool
	// damage: the run is a negative control: it must lose accepted orders or
	// their events, or the suite fails.
	damage bool
}

// asyncFailoverControls: asynchronous replication must lose what its replica
// had not received, in every run: 5 s before the kill the replica stops
// receiving (its I/O thread stopped: a lagging link), so the gap always exists.
// Semi-synchronous replication with AFTER_SYNC must lose nothing, even with the
// replica 5 s behind in applying (its SQL thread held): what the primary
// acknowledged is in the replica's relay log, and the promotion applies it.
func asyncFailoverControls() []asyncFailover {
	return []asyncFailover{
		{name: "async-failover", damage: true},
		{name: "semisync-failover", semisync: true},
	}
}

// The failover's timeline, from the start of the load.
const (
	asyncHoldAt     = 8 * time.Second
	asyncKillAt     = 13 * time.Second
	asyncLoad       = 30 * time.Second
	asyncWaitApply  = 30 * time.Second
	asyncMinAccept  = 400
	asyncMinLossFor = 50 // a control that lost fewer accepted orders is suspect (5 s at 20/s is ~100)
)

// runAsyncFailover runs one failover on a fresh primary/replica pair and judges it.
func runAsyncFailover(t *testing.T, c asyncFailover, seed uint64) {
	t.Helper()
	pair := asyncPair(t)
	primary, replica := harness.DBPrimary(harness.OrderDB), harness.DBReplica(harness.OrderDB)
	sc := scenario{
		name: c.name, rate: dbClusterRate, duration: asyncLoad, minAccepted: asyncMinAccept,
		servers: func(*testing.T) *harness.Infra { return pair }, noServerErrors: true,
	}
	if c.damage {
		sc.name += " (negative control: asynchronous replica, naive promotion)"
		sc.recovery = 30 * time.Second // what is lost stays lost
	}
	var setupErr error
	if c.semisync {
		setupErr = semiSync(pair, primary, replica)
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	sc.faults = func(f *faultRun) error {
		f.sleepUntil(asyncHoldAt)
		hold := "STOP SLAVE IO_THREAD" // the replica receives nothing more
		what := "the replica stops receiving (I/O thread stopped)"
		if c.semisync {
			hold = "STOP SLAVE SQL_THREAD" // it receives (and acknowledges) but applies nothing more
			what = "the replica stops applying (SQL thread stopped)"
		}
		if err := nodeExec(pair, replica, hold); err != nil {
			return err
		}
		f.record(what, time.Now(), 0)
		f.sleepUntil(asyncKillAt)
		from := time.Now()
		if err := pair.Kill(primary); err != nil {
			return err
		}
		how, err := promote(pair, replica, c.semisync)
		if err != nil {
			return err
		}
		f.record("kill -9 "+primary+", "+how, from, time.Since(from))
		return nil
	}
	r := runScenario(t, sc, seed)
	r.NegativeControl = c.damage
	addReport(t, r)
	switch {
	case c.damage && (r.Pass || r.Lost+r.LostEvents < asyncMinLossFor):
		t.Fatalf("the failover to an asynchronous replica lost less than expected (at least %d accepted orders or events): %s",
			asyncMinLossFor, r.Line())
	case c.damage:
		t.Logf("expected failure observed (%s), first violations:\n  %s", r.Line(),
			strings.Join(r.Violations[:min(3, len(r.Violations))], "\n  "))
	case !r.Pass:
		t.Errorf("%s\nviolations (first 20):\n  %s", r.Line(), strings.Join(r.Violations[:min(20, len(r.Violations))], "\n  "))
	}
}

// asyncPair replaces whatever database servers the lane runs with a fresh
// primary/replica pair per database (the lane's Kafka keeps running) and
// returns it: a pair that failed over cannot be used again.
func asyncPair(t *testing.T) *harness.Infra {
	t.Helper()
	dbLane.Lock()
	defer dbLane.Unlock()
	pair := harness.DBClusterInfra()
	pair.DBNodes = 2
	if err := stopLaneDBs(pair); err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{harness.OrderDB, harness.PaymentDB} {
		for _, node := range pair.NodesOf(db) {
			if err := os.RemoveAll(filepath.Join(pair.Dir, node)); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Now()
	dbLane.mode = 2
	if err := pair.Up(); err != nil {
		t.Fatalf("the asynchronous pairs: %v", err)
	}
	t.Logf("primary/replica pairs up in %s", time.Since(start).Round(time.Millisecond))
	return pair
}

// nodeExec runs statements on one database node as the test superuser.
func nodeExec(infra *harness.Infra, node string, stmts ...string) error {
	db, err := infra.NodeDB(node, "")
	if err != nil {
		return err
	}
	defer db.Close()
	for _, stmt := range stmts {
		if _, err := db.Exec(stmt); err != nil {
			return fmt.Errorf("%s: %s: %w", node, stmt, err)
		}
	}
	return nil
}

// semiSync switches the pair to semi-synchronous replication: the primary
// waits, after writing a transaction to its binary log and before committing
// it, until the replica has it (AFTER_SYNC); the timeout after which it would
// silently go on alone is set beyond the run.
func semiSync(pair *harness.Infra, primary, replica string) error {
	if err := nodeExec(pair, primary,
		"SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC",
		"SET GLOBAL rpl_semi_sync_master_timeout = 120000",
		"SET GLOBAL rpl_semi_sync_master_enabled = ON"); err != nil {
		return err
	}
	if err := nodeExec(pair, replica,
		"SET GLOBAL rpl_semi_sync_slave_enabled = ON", "STOP SLAVE IO_THREAD", "START SLAVE IO_THREAD"); err != nil {
		return err
	}
	db, err := pair.NodeDB(primary, "")
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var name, status string
		if err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'").Scan(&name, &status); err != nil {
			return err
		}
		if status == "ON" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: semi-synchronous replication did not start (status %s)", primary, status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promote makes the replica take writes, as the named failover does, and says
// what it did. The naive one stops replicating and takes writes at once; the
// careful one (semisync) first applies everything the replica received.
func promote(pair *harness.Infra, replica string, careful bool) (string, error) {
	stmts := []string{"STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = OFF"}
	if !careful {
		return "promote " + replica + " at once (stop replicating, take writes)", nodeExec(pair, replica, stmts...)
	}
	db, err := pair.NodeDB(replica, "")
	if err != nil {
		return "", err
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "START SLAVE SQL_THREAD"); err != nil {
		return "", err
	}
	// Everything received (Gtid_IO_Pos: what the I/O thread wrote to the relay
	// log) applied, waiting at most asyncWaitApply.
	status, err := slaveStatus(conn)
	if err != nil {
		return "", fmt.Errorf("%s: reading what it received: %w", replica, err)
	}
	received := status["Gtid_IO_Pos"]
	from := time.Now()
	var waited sql.NullInt64
	if err := conn.QueryRowContext(context.Background(), "SELECT MASTER_GTID_WAIT(?, ?)", received, asyncWaitApply.Seconds()).Scan(&waited); err != nil {
		return "", err
	}
	if !waited.Valid || waited.Int64 != 0 {
		return "", fmt.Errorf("%s did not apply what it received (%s) within %s", replica, received, asyncWaitApply)
	}
	applied := time.Since(from)
	for _, stmt := range stmts {
		if _, err := conn.ExecContext(context.Background(), stmt); err != nil {
			return "", fmt.Errorf("%s: %s: %w", replica, stmt, err)
		}
	}
	return fmt.Sprintf("promote %s once it applied all it received (%s, in %.1f s)", replica, received, applied.Seconds()), nil
}

// slaveStatus returns SHOW SLAVE STATUS's one row by column name.
func slaveStatus(conn *sql.Conn) (map[string]string, error) {
	rows, err := conn.QueryContext(context.Background(), "SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, fmt.Errorf("not a replica: %w", cmpErr(rows.Err(), sql.ErrNoRows))
	}
	values := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range values {
		ptrs[i] = &values[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, c := range cols {
		out[c] = values[i].String
	}
	return out, rows.Err()
}
