package dbusers_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/onceflow/onceflow/deploy/dbusers"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/servicedb"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// The services' migrations, read from their directories: deploy/dbusers may not
// import a service's internal packages.
var (
	orderMigrations   = os.DirFS("../../services/order/internal/adapters/mariadb")
	paymentMigrations = os.DirFS("../../services/payment/internal/adapters/mariadb")
)

// TestLeastPrivilege proves the grants of deploy/dbusers on a real server, for
// both services' schemas, migrated, side by side (as if they shared one server):
//   - every table the migrations make has its grant in the service's -app.sql
//     file, and the file names no other table;
//   - the service user runs the DML its code runs, and nothing else: no UPDATE
//     or DELETE on the ledger (append-only), no write to goose's version tables,
//     no change of the columns that never change (an order's or payment's
//     amount, an account's currency), no DELETE where the code deletes nothing,
//     no DDL, nothing on the other service's schema;
//   - the migration user migrates its schema and cannot read, change or grant
//     on the other, nor create a database;
//   - the relay user (Debezium's connector) reads the outbox's definition and
//     the binary log's position, and no table's rows but the outbox's.
//
// The test superuser runs every denied statement first (in a transaction it
// rolls back, or on a scratch table for DDL), as the negative control: each is
// allowed to a user with the privilege, so a denial below is the grants' doing,
// not a broken statement. Finally a service started with the service user alone
// (no migration DSN) fails on a schema with pending migrations and starts on an
// up-to-date one (goose then only reads its version tables).
func TestLeastPrivilege(t *testing.T) {
	testenv.NeedsServers(t, "MariaDB")
	t.Parallel()
	ctx := context.Background()
	addr := testenv.OrderDBAddr
	orders := testenv.NewDatabase(t, addr) // the users of order-db.sql, for a test database
	orders.Migrate(t, orderMigrations)     // as its migration user: DDL, named lock, then the grants of order-app.sql
	payments := testenv.NewDatabase(t, addr)
	payments.Migrate(t, paymentMigrations)

	t.Run("every table has its grants", func(t *testing.T) {
		for _, s := range []struct {
			d    testenv.Database
			tpl  dbusers.Template
			file string
		}{{orders, dbusers.Order, "order-app.sql"}, {payments, dbusers.Payment, "payment-app.sql"}} {
			grants, err := s.tpl.AppGrants(s.d.Name, "app")
			if err != nil {
				t.Fatal(err)
			}
			var granted []string
			for _, g := range grants {
				if g.Table != "" {
					granted = append(granted, g.Table)
				}
			}
			sort.Strings(granted)
			if got := tables(t, s.d); strings.Join(got, " ") != strings.Join(granted, " ") {
				t.Errorf("%s: the migrations make the tables %v; %s grants on %v", s.tpl.Schema, got, s.file, granted)
			}
		}
	})

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
	paymentsApp := open(payments.DSN)
	// Debezium's connector: the relay user of order-db.sql and order-relay.sql.
	ordersRelay := open(testenv.UserDSN(addr, orders.Name, orders.Name+"_relay", orders.Name+"_relay"))
	o, p := "`"+orders.Name+"`.", "`"+payments.Name+"`."
	t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS `" + orders.Name + "_evil`") })
	// reset gives both schemas an empty scratch table "things" for the DDL
	// statements, and nothing else of them.
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
	reset()

	// A step is a statement run by one of the users; ddl marks one whose
	// negative control cannot be rolled back (it runs on the scratch table).
	type step struct {
		name string
		as   *sql.DB
		stmt string
		ddl  bool
	}
	const order = "('o-1', 'c-1', 1250, 'EUR', 'PENDING', 1, NOW(6), NOW(6))"
	const orderCols = "(id, customer_id, amount_cents, currency, status, version, created_at, updated_at)"
	allowed := []step{
		{"service user places an order", ordersApp, "INSERT INTO " + o + "orders " + orderCols + " VALUES " + order, false},
		{"service user changes an order's status", ordersApp, "UPDATE " + o + "orders SET status = 'CANCELLED', version = 2 WHERE id = 'o-1'", false},
		{"service user stores a key and its answer", ordersApp, "INSERT INTO " + o + "idempotency_keys (scope, idem_key, fingerprint, created_at, expires_at) VALUES ('s', 'k', 'f', NOW(6), NOW(6))", false},
		{"service user records a key's answer", ordersApp, "UPDATE " + o + "idempotency_keys SET answer_status = 201, answer_header = '{}', answer_body = 'x'", false},
		{"service user deletes expired keys", ordersApp, "DELETE FROM " + o + "idempotency_keys", false},
		{"service user reads the outbox", ordersApp, "SELECT COUNT(*) FROM " + o + "watermill_outbox", false},
		{"service user deletes forwarded rows", ordersApp, "DELETE FROM " + o + "watermill_outbox WHERE `offset` = 0", false},
		{"service user reads goose's version", ordersApp, "SELECT MAX(version_id) FROM " + o + "goose_db_version", false},
		{"service user takes a named lock", ordersApp, "SELECT GET_LOCK('onceflow_privileges', 1), RELEASE_LOCK('onceflow_privileges')", false},
		{"payment user seeds an account", paymentsApp, "INSERT INTO " + p + "accounts VALUES ('c-1', 1000, 'EUR')", false},
		{"payment user debits it", paymentsApp, "UPDATE " + p + "accounts SET balance_cents = balance_cents - 1 WHERE customer_id = 'c-1' AND currency = 'EUR'", false},
		{"payment user appends to the ledger", paymentsApp, "INSERT INTO " + p + "ledger (order_id, customer_id, kind, amount_cents, created_at) VALUES ('o-1', 'c-1', 'charge', 1, NOW(6))", false},
		{"payment user reads the ledger", paymentsApp, "SELECT SUM(amount_cents) FROM " + p + "ledger", false},
		{"relay user reads the outbox's definition", ordersRelay, "SHOW CREATE TABLE " + o + "watermill_outbox", false},
		{"relay user reads the binary log's position", ordersRelay, "SHOW MASTER STATUS", false},
		{"migration user creates a table", ordersMigrate, "CREATE TABLE " + o + "more (id INT)", true},
		{"migration user drops it", ordersMigrate, "DROP TABLE " + o + "more", true},
	}
	denied := []step{
		{"relay user reads the orders", ordersRelay, "SELECT COUNT(*) FROM " + o + "orders", false},
		{"relay user deletes outbox rows", ordersRelay, "DELETE FROM " + o + "watermill_outbox", false},
		{"relay user reads the payments", ordersRelay, "SELECT COUNT(*) FROM " + p + "ledger", false},
		{"payment user changes the ledger", paymentsApp, "UPDATE " + p + "ledger SET amount_cents = 0", false},
		{"payment user deletes from the ledger", paymentsApp, "DELETE FROM " + p + "ledger", false},
		{"payment user writes goose's version table", paymentsApp, "INSERT INTO " + p + "goose_db_version (version_id, is_applied) VALUES (99, 1)", false},
		{"payment user changes goose's version table", paymentsApp, "UPDATE " + p + "goose_db_version SET is_applied = 0", false},
		{"payment user deletes from goose's version table", paymentsApp, "DELETE FROM " + p + "goose_outbox_version", false},
		{"payment user changes a payment's amount", paymentsApp, "UPDATE " + p + "payments SET amount_cents = 0", false},
		{"payment user changes an account's currency", paymentsApp, "UPDATE " + p + "accounts SET currency = 'USD'", false},
		{"payment user deletes an account", paymentsApp, "DELETE FROM " + p + "accounts", false},
		{"payment user deletes a payment", paymentsApp, "DELETE FROM " + p + "payments", false},
		{"order user writes goose's version table", ordersApp, "INSERT INTO " + o + "goose_outbox_version (version_id, is_applied) VALUES (99, 1)", false},
		{"order user changes goose's version table", ordersApp, "UPDATE " + o + "goose_db_version SET is_applied = 0", false},
		{"order user deletes from goose's version table", ordersApp, "DELETE FROM " + o + "goose_db_version", false},
		{"order user changes an order's amount", ordersApp, "UPDATE " + o + "orders SET amount_cents = 0", false},
		{"order user deletes an order", ordersApp, "DELETE FROM " + o + "orders", false},
		{"order user changes a key's request", ordersApp, "UPDATE " + o + "idempotency_keys SET fingerprint = 'x'", false},
		{"order user changes the timeline", ordersApp, "UPDATE " + o + "order_timeline SET event_type = 'x'", false},
		{"service user creates a table", ordersApp, "CREATE TABLE " + o + "evil (id INT)", true},
		{"service user drops a table", ordersApp, "DROP TABLE " + o + "things", true},
		{"service user alters a table", ordersApp, "ALTER TABLE " + o + "things ADD COLUMN evil INT", true},
		{"service user truncates a table", ordersApp, "TRUNCATE TABLE " + o + "things", true},
		{"service user adds an index", ordersApp, "CREATE INDEX evil ON " + o + "things (n)", true},
		{"service user reads the other service's table", ordersApp, "SELECT * FROM " + p + "ledger", false},
		{"service user writes the other service's table", ordersApp, "INSERT INTO " + p + "processed_messages (consumer_group, message_id) VALUES ('g', 'm')", false},
		{"other service's user reads this one's table", paymentsApp, "SELECT * FROM " + o + "orders", false},
		{"migration user reads the other service's table", ordersMigrate, "SELECT * FROM " + p + "ledger", false},
		{"migration user grants on the other service's table", ordersMigrate, "GRANT UPDATE ON " + p + "ledger TO '" + user(t, payments.DSN) + "'@'%'", true},
		{"migration user drops the other service's table", ordersMigrate, "DROP TABLE " + p + "things", true},
		{"migration user creates a table in the other schema", ordersMigrate, "CREATE TABLE " + p + "evil (id INT)", true},
		{"migration user creates a database", ordersMigrate, "CREATE DATABASE `" + orders.Name + "_evil`", true},
	}
	// The negative control: the superuser may run each statement denied below.
	for _, s := range denied {
		reset()
		if s.ddl {
			if _, err := admin.ExecContext(ctx, s.stmt); err != nil {
				t.Fatalf("control: the superuser cannot run %q (%s): %v; the check below would prove nothing", s.stmt, s.name, err)
			}
			if strings.HasPrefix(s.stmt, "GRANT ") {
				if _, err := admin.ExecContext(ctx, strings.Replace(strings.Replace(s.stmt, "GRANT", "REVOKE", 1), " TO ", " FROM ", 1)); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		tx, err := admin.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tx.ExecContext(ctx, s.stmt)
		_ = tx.Rollback()
		if err != nil {
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
	cfg := sqldb.Config{DSN: fresh.DSN, StartupTimeout: 10 * time.Second}
	if db, err := sqldb.OpenAndMigrate(ctx, cfg, logger, servicedb.Migrations(nil)...); err == nil || !isDenied(errors.Unwrap(err)) && !isDenied(err) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("the service user migrated a fresh database: %v; want an access denied error", err)
	}
	fresh.Migrate(t, nil)
	db, err := sqldb.OpenAndMigrate(ctx, cfg, logger, servicedb.Migrations(nil)...)
	if err != nil {
		t.Fatalf("the service user on an up-to-date schema: %v", err)
	}
	db.Close()
}

// TestGrantAtStart: a service's start (Template.OpenAndMigrate with a
// migration DSN) gives a service user that still holds the database-wide DML
// of earlier versions exactly the privileges of its -app.sql file, in every
// session of the pool it returns: the ledger becomes append-only. A second
// start changes nothing more.
func TestGrantAtStart(t *testing.T) {
	testenv.NeedsServers(t, "MariaDB")
	t.Parallel()
	ctx := context.Background()
	d := testenv.NewDatabase(t, testenv.PaymentDBAddr) // the service user has database-wide DML until the grants
	logger := slog.New(slog.DiscardHandler)
	db, err := sqldb.OpenAndMigrate(ctx, sqldb.Config{DSN: d.MigrateDSN, StartupTimeout: time.Minute}, logger, servicedb.Migrations(paymentMigrations)...)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	const change = "UPDATE ledger SET amount_cents = 0"
	before, err := sql.Open("mysql", d.DSN)
	if err != nil {
		t.Fatal(err)
	}
	_, err = before.ExecContext(ctx, change)
	before.Close()
	if err != nil {
		t.Fatalf("before the grants (the old database-wide DML): %v; the check below would prove nothing", err)
	}
	for range 2 {
		app, err := dbusers.Payment.OpenAndMigrate(ctx, d.DBConfig(), logger, servicedb.Migrations(paymentMigrations)...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := app.ExecContext(ctx, change); !isDenied(err) {
			t.Errorf("%q after the grants = %v, want an access denied error", change, err)
		}
		if _, err := app.ExecContext(ctx, "INSERT INTO ledger (order_id, customer_id, kind, amount_cents, created_at) VALUES ('o', 'c', 'charge', 1, NOW(6))"); err != nil {
			t.Errorf("appending to the ledger after the grants: %v", err)
		}
		app.Close()
	}
}

// tables lists the tables of d, sorted.
func tables(t *testing.T, d testenv.Database) []string {
	t.Helper()
	rows, err := d.Admin.Query("SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name", d.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// user is the user name of dsn.
func user(t *testing.T, dsn string) string {
	t.Helper()
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return c.User
}

// isDenied reports a MariaDB access error: a command denied on a table
// (1142) or on a column (1143), or access denied to a database (1044).
func isDenied(err error) bool {
	var my *mysql.MySQLError
	return errors.As(err, &my) && (my.Number == 1142 || my.Number == 1143 || my.Number == 1044)
}
