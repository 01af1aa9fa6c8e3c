package dbusers_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/onceflow/onceflow/deploy/dbusers"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/messaging"
)

// TestLeastPrivilege proves the grants of order-db.sql and payment-db.sql on a
// real server, for two services' schemas side by side (as if they shared one
// server): the service user reads and writes its own tables and can neither
// change the schema (CREATE, DROP, ALTER, TRUNCATE) nor read or write the
// other service's tables; the migration user runs the migrations on its own
// schema and cannot touch the other. The test superuser runs the same
// statements first, as the negative control: each is allowed to a user with
// the privilege, so a denial below is the grants' doing, not a broken
// statement. Finally a service started with the service user alone (no
// migration DSN) fails on a schema with pending migrations and starts on an
// up-to-date one (goose then only reads its version tables).
func TestLeastPrivilege(t *testing.T) {
	testenv.NeedsServers(t, "MariaDB")
	t.Parallel()
	ctx := context.Background()
	addr := testenv.OrderDBAddr
	orders := testenv.NewDatabase(t, addr) // the users of order-db.sql, for a test database
	orders.Migrate(t, nil)                 // as its migration user: goose's DDL and named lock
	payments, paymentUsers := paymentsDatabase(t, addr)

	open := func(dsn string) *sql.DB {
		t.Helper()
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	admin := orders.Admin
	ordersApp, ordersMigrate := open(orders.DSN), open(orders.MigrateDSN)
	paymentsApp := open(testenv.UserDSN(addr, payments, paymentUsers.App, paymentUsers.AppPassword))
	o, p := "`"+orders.Name+"`.", "`"+payments+"`."
	t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS `" + orders.Name + "_evil`") })
	// reset gives both schemas an empty table "things" and nothing else of
	// the statements below.
	reset := func() {
		t.Helper()
		for _, q := range []string{"DROP TABLE IF EXISTS " + o + "evil", "DROP TABLE IF EXISTS " + p + "evil",
			"DROP TABLE IF EXISTS " + o + "more", "DROP DATABASE IF EXISTS `" + orders.Name + "_evil`",
			"DROP TABLE IF EXISTS " + o + "things", "DROP TABLE IF EXISTS " + p + "things",
			"CREATE TABLE " + o + "things (id INT PRIMARY KEY, n INT)", "CREATE TABLE " + p + "things (id INT PRIMARY KEY, n INT)"} {
			if _, err := admin.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}

	// A step is a statement run by one of the users.
	type step struct {
		name string
		as   *sql.DB
		stmt string
	}
	allowed := []step{
		{"service user inserts its rows", ordersApp, "INSERT INTO " + o + "things VALUES (1, 1)"},
		{"service user reads its rows", ordersApp, "SELECT * FROM " + o + "things"},
		{"service user updates its rows", ordersApp, "UPDATE " + o + "things SET n = 2"},
		{"service user reads the outbox", ordersApp, "SELECT * FROM " + o + "watermill_outbox"},
		{"service user deletes its rows", ordersApp, "DELETE FROM " + o + "things"},
		{"service user takes a named lock", ordersApp, "SELECT GET_LOCK('onceflow_privileges', 1), RELEASE_LOCK('onceflow_privileges')"},
		{"migration user creates a table", ordersMigrate, "CREATE TABLE " + o + "more (id INT)"},
		{"migration user drops it", ordersMigrate, "DROP TABLE " + o + "more"},
	}
	denied := []step{
		{"service user creates a table", ordersApp, "CREATE TABLE " + o + "evil (id INT)"},
		{"service user drops a table", ordersApp, "DROP TABLE " + o + "things"},
		{"service user alters a table", ordersApp, "ALTER TABLE " + o + "things ADD COLUMN evil INT"},
		{"service user truncates a table", ordersApp, "TRUNCATE TABLE " + o + "things"},
		{"service user adds an index", ordersApp, "CREATE INDEX evil ON " + o + "things (n)"},
		{"service user reads the other service's table", ordersApp, "SELECT * FROM " + p + "things"},
		{"service user writes the other service's table", ordersApp, "INSERT INTO " + p + "things VALUES (9, 9)"},
		{"other service's user reads this one's table", paymentsApp, "SELECT * FROM " + o + "things"},
		{"migration user reads the other service's table", ordersMigrate, "SELECT * FROM " + p + "things"},
		{"migration user drops the other service's table", ordersMigrate, "DROP TABLE " + p + "things"},
		{"migration user creates a table in the other schema", ordersMigrate, "CREATE TABLE " + p + "evil (id INT)"},
		{"migration user creates a database", ordersMigrate, "CREATE DATABASE `" + orders.Name + "_evil`"},
	}
	// The negative control: the superuser may run each statement denied below.
	for _, s := range denied {
		reset()
		if _, err := admin.ExecContext(ctx, s.stmt); err != nil {
			t.Fatalf("control: the superuser cannot run %q (%s): %v; the check below would prove nothing", s.stmt, s.name, err)
		}
	}
	reset()
	for _, s := range allowed {
		if _, err := s.as.ExecContext(ctx, s.stmt); err != nil {
			t.Errorf("%s: %q failed: %v", s.name, s.stmt, err)
		}
	}
	for _, s := range denied {
		_, err := s.as.ExecContext(ctx, s.stmt)
		if !isDenied(err) {
			t.Errorf("%s: %q = %v, want an access denied error", s.name, s.stmt, err)
		}
	}

	// A service with the service user alone: refused while migrations are
	// pending (here all of them: a fresh database), accepted once they ran.
	fresh := testenv.NewDatabase(t, addr)
	logger := slog.New(slog.DiscardHandler)
	cfg := messaging.DBConfig{DSN: fresh.DSN, StartupTimeout: 10 * time.Second}
	if db, err := messaging.OpenAndMigrate(ctx, cfg, nil, logger); err == nil || !isDenied(errors.Unwrap(err)) && !isDenied(err) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("the service user migrated a fresh database: %v; want an access denied error", err)
	}
	fresh.Migrate(t, nil)
	db, err := messaging.OpenAndMigrate(ctx, cfg, nil, logger)
	if err != nil {
		t.Fatalf("the service user on an up-to-date schema: %v", err)
	}
	db.Close()
}

// isDenied reports a MariaDB access error: a command denied on a table (1142)
// or access denied to a database (1044).
func isDenied(err error) bool {
	var my *mysql.MySQLError
	return errors.As(err, &my) && (my.Number == 1142 || my.Number == 1044)
}

// paymentsDatabase creates a database on addr with the users of payment-db.sql
// made for it, dropped when the test ends, and returns its name and users.
func paymentsDatabase(t *testing.T, addr string) (string, dbusers.Users) {
	t.Helper()
	admin, err := sql.Open("mysql", testenv.DSN(addr, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	name := testenv.UniqueName(t, "p")
	stmts, users, err := dbusers.Payment.For(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := testenv.DropDatabase(addr, users); err != nil {
			t.Errorf("removing the test's database: %v", err)
		}
	})
	for _, s := range stmts { // CREATE DATABASE IF NOT EXISTS first
		if _, err := admin.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return name, users
}
