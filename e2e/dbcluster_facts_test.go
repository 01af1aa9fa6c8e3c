package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/failure"
)

// galeraFacts shows, on the lane's order cluster, what Galera changes for code
// written for one MariaDB server, and checks how this project handles each
// (ADR 0060). Each part talks to the nodes directly, not through the proxy
// (which sends everything to one node and so hides most of them).
func galeraFacts(t *testing.T, infra *harness.Infra) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodes := infra.NodesOf(harness.OrderDB)
	admin, err := sql.Open("mysql", testenv.DSN(infra.OrderDBAddr(), ""))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := testenv.UniqueName(t, "galera")
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS `" + name + "`") }()
	users, err := testenv.CreateUsers(ctx, admin, name)
	if err != nil {
		t.Fatal(err)
	}
	// pools[n] reaches node n+1 as the test superuser, on the test's database.
	pools := make([]*sql.DB, len(nodes))
	for n, node := range nodes {
		if pools[n], err = infra.NodeDB(node, name); err != nil {
			t.Fatal(err)
		}
		defer pools[n].Close()
	}
	mustExec := func(t *testing.T, db *sql.DB, stmts ...string) {
		t.Helper()
		for _, stmt := range stmts {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}

	// DDL runs in total order isolation (TOI): on every node at the same point
	// of the replication stream, so a migration through any node (the
	// services' go through the proxy) changes every node's schema; the users
	// and grants that deploy/dbusers gives (CREATE USER, GRANT) replicate the
	// same way, so the least-privilege service user exists, with the same
	// privileges, on every node. The node that ran a statement does not wait
	// for the others to apply it: a node still applying the GRANT refuses the
	// service user for a moment (seen under the full suite's load), so each
	// node gets a few seconds.
	t.Run("DDL and grants reach every node", func(t *testing.T) {
		migrate, err := sql.Open("mysql", testenv.UserDSN(infra.DBNodeAddr(nodes[0]), name, users.Migrate, users.MigratePassword))
		if err != nil {
			t.Fatal(err)
		}
		defer migrate.Close()
		mustExec(t, migrate,
			"CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL)",
			"CREATE TABLE queue (`offset` BIGINT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(20) NOT NULL)",
			"GRANT SELECT, UPDATE ON accounts TO '"+users.App+"'@'%'")
		for _, node := range nodes {
			app, err := sql.Open("mysql", testenv.UserDSN(infra.DBNodeAddr(node), name, users.App, users.AppPassword))
			if err != nil {
				t.Fatal(err)
			}
			var n int
			for applied := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				err = app.QueryRowContext(ctx, "SELECT COUNT(*) FROM accounts").Scan(&n)
				if err == nil || time.Now().After(applied) {
					break
				}
			}
			_, denied := app.ExecContext(ctx, "DELETE FROM accounts")
			app.Close()
			if err != nil {
				t.Errorf("%s: the service user cannot read the table created on %s: %v", node, nodes[0], err)
			}
			var me *mysql.MySQLError
			if !errors.As(denied, &me) || me.Number != 1142 {
				t.Errorf("%s: a DELETE the service user was not granted: got %v, want error 1142 (command denied)", node, denied)
			}
		}
	})

	// SELECT ... FOR UPDATE locks rows on one node only. Two transactions on
	// two nodes both lock the same account without waiting for each other and
	// both change it; the cluster orders the two commits and aborts the later
	// one at COMMIT (a certification failure, or a brute-force abort of a
	// transaction that held a lock a replicated one needed) with a deadlock
	// error, 1213: the money stays right, but only because the loser retries.
	// Through the proxy both would run on one node, where the second lock
	// waits for the first as on a single server (the last part).
	t.Run("FOR UPDATE locks one node; the later commit aborts with 1213", func(t *testing.T) {
		mustExec(t, pools[0], "INSERT INTO accounts VALUES (1, 100)")
		waitRow(ctx, t, pools[1], "SELECT balance FROM accounts WHERE id = 1", 100)
		a, b := beginOn(ctx, t, pools[0]), beginOn(ctx, t, pools[1])
		for _, tx := range []*sql.Tx{a, b} {
			lockCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			var balance int
			err := tx.QueryRowContext(lockCtx, "SELECT balance FROM accounts WHERE id = 1 FOR UPDATE").Scan(&balance)
			cancel()
			if err != nil {
				t.Fatalf("the second node's FOR UPDATE waited for the first's lock (locks are per node): %v", err)
			}
			if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = ? WHERE id = 1", balance-30); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Commit(); err != nil {
			t.Fatalf("the first commit: %v", err)
		}
		err := b.Commit()
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1213 {
			t.Fatalf("the second commit: got %v, want error 1213 (its change conflicts with a committed one)", err)
		}
		if !failure.IsAborted(err) || failure.IsUnavailable(err) {
			t.Errorf("error 1213 at COMMIT: IsAborted=%v IsUnavailable=%v, want true, false (nothing stored, run it again)",
				failure.IsAborted(err), failure.IsUnavailable(err))
		}
		waitRow(ctx, t, pools[2], "SELECT balance FROM accounts WHERE id = 1", 70)

		// The proxy sends both to the writer: the second lock waits.
		a, b = beginOn(ctx, t, admin), beginOn(ctx, t, admin)
		defer a.Rollback()
		defer b.Rollback()
		var balance int
		if err := a.QueryRowContext(ctx, "SELECT balance FROM `"+name+"`.accounts WHERE id = 1 FOR UPDATE").Scan(&balance); err != nil {
			t.Fatal(err)
		}
		lockCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		if _, err := b.ExecContext(lockCtx, "SET STATEMENT innodb_lock_wait_timeout = 1 FOR SELECT balance FROM `"+name+"`.accounts WHERE id = 1 FOR UPDATE"); err == nil {
			t.Error("through the proxy, a second FOR UPDATE of the same row did not wait for the first")
		}
	})

	// Each node hands out AUTO_INCREMENT values from its own residue class
	// (auto_increment_increment = cluster size, offset = the node's index),
	// and a value taken earlier can commit later: offsets say nothing about
	// commit order. A reader that remembers "everything up to offset N is
	// done" would skip the late one; the outbox's queue schema (ADR 3) selects
	// every row not yet forwarded, in offset order, and deletes what it
	// forwarded, so the late row is simply found by the next poll.
	t.Run("AUTO_INCREMENT offsets interleave and commit out of order", func(t *testing.T) {
		offsets := map[int64]string{}
		for n, node := range nodes {
			res, err := pools[n].ExecContext(ctx, "INSERT INTO queue (node) VALUES (?)", node)
			if err != nil {
				t.Fatal(err)
			}
			id, _ := res.LastInsertId()
			offsets[id%3] = node
		}
		if len(offsets) != 3 {
			t.Errorf("offsets of three nodes' inserts fall in %d residue classes mod 3, want 3: %v", len(offsets), offsets)
		}
		// Hold an insert open on one node, commit one on another; whichever
		// node hands out the lower offset holds its insert.
		early, late := pools[0], pools[1]
		for range 2 {
			tx := beginOn(ctx, t, early)
			res, err := tx.ExecContext(ctx, "INSERT INTO queue (node) VALUES ('held')")
			if err != nil {
				t.Fatal(err)
			}
			held, _ := res.LastInsertId()
			res, err = late.ExecContext(ctx, "INSERT INTO queue (node) VALUES ('committed')")
			if err != nil {
				t.Fatal(err)
			}
			committed, _ := res.LastInsertId()
			if committed < held {
				_ = tx.Rollback()
				early, late = late, early
				continue
			}
			// Node 3 sees the later offset while the earlier one is not there yet.
			waitRow(ctx, t, pools[2], "SELECT MAX(`offset`) FROM queue", int(committed))
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			waitRow(ctx, t, pools[2], fmt.Sprintf("SELECT COUNT(*) FROM queue WHERE `offset` = %d", held), 1)
			t.Logf("offset %d committed while offset %d was open on another node, which became visible after it", committed, held)
			return
		}
		t.Fatal("no node handed out a lower offset than the other: could not hold one open")
	})

	// Reads right after writes: a node applies what others committed a little
	// later (each node certifies at once, applies in its own time). A read on
	// a node that lags misses a row the client already saw committed;
	// wsrep_sync_wait = 1 makes the read wait until the node applied
	// everything committed before it began. Here node 2's applier is held
	// (FLUSH TABLES WITH READ LOCK pauses it) while node 1 commits.
	t.Run("a lagging node reads stale rows unless wsrep_sync_wait", func(t *testing.T) {
		lock, err := pools[1].Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Close()
		if _, err := lock.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
			t.Fatal(err)
		}
		mustExec(t, pools[0], "INSERT INTO accounts VALUES (2, 500)")
		var n int
		if err := pools[1].QueryRowContext(ctx, "SELECT COUNT(*) FROM accounts WHERE id = 2").Scan(&n); err != nil || n != 0 {
			t.Fatalf("node 2 read the row committed on node 1 while its applier was held: count %d, %v", n, err)
		}
		read := make(chan error, 1)
		start := time.Now()
		go func() {
			conn, err := pools[1].Conn(ctx)
			if err != nil {
				read <- err
				return
			}
			defer conn.Close()
			var n int
			_, err = conn.ExecContext(ctx, "SET SESSION wsrep_sync_wait = 1")
			if err == nil {
				err = conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM accounts WHERE id = 2").Scan(&n)
			}
			if err == nil && n != 1 {
				err = fmt.Errorf("count %d", n)
			}
			read <- err
		}()
		time.Sleep(time.Second)
		if _, err := lock.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
			t.Fatal(err)
		}
		if err := <-read; err != nil {
			t.Fatalf("with wsrep_sync_wait = 1 the read on node 2 did not see the row: %v", err)
		}
		if waited := time.Since(start); waited < time.Second {
			t.Errorf("with wsrep_sync_wait = 1 the read returned after %s, before node 2 applied the row", waited)
		}
	})

	// A node outside the primary component (here cut off from both peers)
	// refuses every query with 1047, "WSREP has not yet prepared node for
	// application use": an outage of that server, which the consumer stack
	// must retry without poisoning and the HTTP edge must answer with 503.
	t.Run("a node without a majority refuses queries: unavailable", func(t *testing.T) {
		node := nodes[2]
		if err := infra.Isolate(node); err != nil {
			t.Fatal(err)
		}
		healed := false
		defer func() {
			if !healed {
				_ = infra.Heal(node)
			}
		}()
		var err error
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			var n int
			if err = pools[2].QueryRowContext(ctx, "SELECT COUNT(*) FROM accounts").Scan(&n); err != nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1047 {
			t.Fatalf("the isolated node answered %v, want error 1047", err)
		}
		if !failure.IsUnavailable(err) {
			t.Errorf("error 1047 (%v): IsUnavailable = false, want true", err)
		}
		healed = true
		if err := infra.Heal(node); err != nil {
			t.Fatal(err)
		}
		if err := infra.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func beginOn(ctx context.Context, t *testing.T, db *sql.DB) *sql.Tx {
	t.Helper()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// waitRow waits until query's single integer result is want (a node applies
// what another committed shortly after).
func waitRow(ctx context.Context, t *testing.T, db *sql.DB, query string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var got int
	var err error
	for time.Now().Before(deadline) {
		if err = db.QueryRowContext(ctx, query).Scan(&got); err == nil && got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: got %d (%v), want %d", strings.TrimSpace(query), got, err, want)
}
