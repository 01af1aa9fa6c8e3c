// Package testenv gives integration tests the real servers they run against: a
// fresh database on one of the MariaDB servers, unique Kafka topics and consumer
// group names, all removed when the test ends (cleanup.go).
//
// Addresses come from the environment (`make test` points them at servers of
// its own), with the defaults of `make infra-up`:
// ORDER_DB_ADDR (127.0.0.1:3307), PAYMENT_DB_ADDR (127.0.0.1:3308),
// KAFKA_BROKERS (127.0.0.1:9092), DB_USER / DB_PASSWORD (onceflow / onceflow:
// the development and test superuser of deploy/local/infra.sh, which creates
// each test's database; the code under test connects as that database's own
// service user).
//
// With -short every test that needs a server is skipped before anything is
// dialled: `go test -short ./...` needs no MariaDB and no Kafka. Otherwise a
// server that does not answer skips the test, with a hint to run `make
// infra-up`, except under CI=true, where it fails the test: CI must never pass by
// skipping.
//
// It lives in the module's internal/ directory: every test of the module (in
// pkg/, services/ and e2e/) may import it, nothing outside the module can. The
// e2e harness, the bench and the demos use its DSN and MessageCount too, so that
// there is one way to reach a test server.
package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-sql-driver/mysql"

	"github.com/onceflow/onceflow/deploy/dbusers"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/retention"
	"github.com/onceflow/onceflow/pkg/servicedb"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// Getenv returns the environment variable key, or def when it is unset or empty.
func Getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Server addresses.
var (
	OrderDBAddr   = Getenv("ORDER_DB_ADDR", "127.0.0.1:3307")
	PaymentDBAddr = Getenv("PAYMENT_DB_ADDR", "127.0.0.1:3308")
	KafkaBrokers  = strings.Split(Getenv("KAFKA_BROKERS", "127.0.0.1:9092"), ",")
	dbUser        = Getenv("DB_USER", "onceflow")
	dbPassword    = Getenv("DB_PASSWORD", "onceflow")
)

// Missing reports a server the test needs but cannot reach: it fails the test
// under CI=true and skips it otherwise.
func Missing(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not reachable (CI=true, so this fails instead of skipping): %v", what, err)
	}
	t.Skipf("%s is not reachable (%v); start the local servers with `make infra-up`", what, err)
}

// NeedsServers skips the test under -short: it needs what (a real server).
func NeedsServers(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s: skipped with -short", what)
	}
}

// DSN returns a go-sql-driver DSN for database db on addr (an empty db: the
// server, without a default database) as the development user DB_USER /
// DB_PASSWORD, with the settings the services force (parseTime, UTC) and a 3 s
// dial timeout. It only formats: nothing is dialled.
func DSN(addr, db string) string {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = dbUser, dbPassword, "tcp", addr, db
	c.ParseTime = true
	c.Timeout = 3 * time.Second
	c.Params = map[string]string{"time_zone": "'+00:00'"}
	return c.FormatDSN()
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// UniqueName returns a name unique to this test run, made of prefix, the test's
// name and random letters, safe as a database or topic name (at most 60 chars).
func UniqueName(t testing.TB, prefix string) string {
	return fmt.Sprintf("%s_%s_%s", prefix, testPart(t), strings.ToLower(watermill.NewShortUUID()[:8]))
}

// testPart is the part of UniqueName's names that comes from the test's name.
func testPart(t testing.TB) string {
	name := unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 30 {
		name = name[len(name)-30:]
	}
	return strings.Trim(name, "_")
}

// NewDB creates an empty database on the server at addr, returns a pool
// connected to it as the development superuser (for the test's own set-up,
// migrations included) and drops the database when the test ends. Code under
// test should get a Database's DSN instead (NewDatabase).
func NewDB(t testing.TB, addr string) *sql.DB {
	t.Helper()
	return NewDatabase(t, addr).Admin
}

// Database is a fresh database of one test and the three users that reach it:
// the test's superuser, and the migration and service users a
// deployment has, made from deploy/dbusers' statements for this database.
type Database struct {
	// Name is the database's name.
	Name string
	// Admin is a pool as the development superuser (DB_USER), for the test's
	// own set-up and checks. Closed when the test ends.
	Admin *sql.DB
	// DSN is the service user's: what the code under test connects with. Until
	// the database is migrated (Migrate, or a service's start with
	// MigrateDSN) it may SELECT, INSERT, UPDATE and DELETE anything in Name, so
	// that tests of the consumer stack can run consumers on tables of their
	// own; from then on it has a deployment's privileges, table by table
	// (deploy/dbusers/*-app.sql).
	DSN string
	// MigrateDSN is the migration user's (every privilege on Name alone, with
	// GRANT OPTION).
	MigrateDSN string
}

// DBConfig returns the database configuration of a service or of a pattern's package
// under test on d: the service user's DSN, the migration user's, and a 10 s
// start-up timeout.
func (d Database) DBConfig() sqldb.Config {
	return sqldb.Config{DSN: d.DSN, MigrateDSN: d.MigrateDSN, StartupTimeout: 10 * time.Second}
}

// NewDatabase creates an empty database on the server at addr with its
// migration and service users (deploy/dbusers), and drops them all when the
// test ends.
func NewDatabase(t testing.TB, addr string) Database {
	t.Helper()
	NeedsServers(t, "MariaDB at "+addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := sql.Open("mysql", DSN(addr, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.PingContext(ctx); err != nil {
		Missing(t, "MariaDB at "+addr, err)
	}
	name := UniqueName(t, "t")
	_, users, err := dbusers.Order.For(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := DropDatabase(addr, users); err != nil {
			t.Errorf("removing the test's database: %v", err)
		}
	})
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	if _, err := CreateUsers(ctx, admin, name); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, "GRANT SELECT, INSERT, UPDATE, DELETE ON `"+
		strings.ReplaceAll(name, "_", `\_`)+"`.* TO '"+users.App+"'@'%'"); err != nil { // until Migrate (see DSN)
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", DSN(addr, name))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(100)
	db.SetMaxIdleConns(100)
	t.Cleanup(func() { db.Close() })
	return Database{Name: name, Admin: db,
		DSN:        UserDSN(addr, name, users.App, users.AppPassword),
		MigrateDSN: UserDSN(addr, name, users.Migrate, users.MigratePassword)}
}

// Migrate brings d up to date as its migration user, as a service's start-up
// does (sqldb.OpenAndMigrate with MigrateDSN): the patterns' tables, then
// serviceMigrations (a service's embedded migrations, *.sql under a
// "migrations" directory; nil for none). Then, as the migration user too, it
// gives the service user a deployment's privileges on the tables d has (those
// of deploy/dbusers/payment-app.sql if d has the payment tables, else of
// order-app.sql), and no more.
func (d Database) Migrate(t testing.TB, serviceMigrations fs.FS) {
	t.Helper()
	db, err := sqldb.OpenAndMigrate(context.Background(), sqldb.Config{DSN: d.MigrateDSN, StartupTimeout: time.Minute},
		slog.New(slog.DiscardHandler), servicedb.Migrations(serviceMigrations)...)
	if err != nil {
		t.Fatalf("migrating %s as its migration user: %v", d.Name, err)
	}
	defer db.Close()
	if err := grantApp(context.Background(), db, d.Name, d.DSN); err != nil {
		t.Fatalf("granting the service user of %s its privileges: %v", d.Name, err)
	}
}

// grantApp runs, through db (the migration user's pool on database name), the
// grants of the service user of serviceDSN on the tables name has, and the
// relay user's on the outbox.
func grantApp(ctx context.Context, db *sql.DB, name, serviceDSN string) error {
	rows, err := db.QueryContext(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", name)
	if err != nil {
		return err
	}
	tables := map[string]bool{}
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			rows.Close()
			return err
		}
		tables[table] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	tpl := dbusers.Order
	if tables["payments"] {
		tpl = dbusers.Payment
	}
	c, err := mysql.ParseDSN(serviceDSN)
	if err != nil {
		return err
	}
	grants, err := tpl.AppGrants(name, c.User)
	if err != nil {
		return err
	}
	for _, g := range grants {
		if g.Table != "" && !tables[g.Table] {
			continue
		}
		if _, err := db.ExecContext(ctx, g.SQL); err != nil {
			return fmt.Errorf("%s: %w", g.SQL, err)
		}
	}
	if tables["watermill_outbox"] {
		for _, s := range tpl.RelayGrants(name) {
			if _, err := db.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
	}
	return nil
}

// Open returns a pool on d as its service user with the services' settings
// (sqldb.Open), closed when the test ends.
func (d Database) Open(t testing.TB, maxOpen int) *sql.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sqldb.Open(ctx, d.DSN, maxOpen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// CreateUsers creates (or keeps) the migration and service users of database
// name through admin, with the statements of deploy/dbusers (the same grants
// as order-db.sql), and returns their credentials. The e2e harness uses it for
// its databases too.
func CreateUsers(ctx context.Context, admin *sql.DB, name string) (dbusers.Users, error) {
	stmts, users, err := dbusers.Order.For(name)
	if err != nil {
		return users, err
	}
	for _, s := range stmts {
		if _, err := admin.ExecContext(ctx, s); err != nil {
			return users, fmt.Errorf("database users of %s: %s: %w", name, s, err)
		}
	}
	return users, nil
}

// UserDSN is DSN as user with password instead of the development superuser.
func UserDSN(addr, db, user, password string) string {
	c, _ := mysql.ParseDSN(DSN(addr, db))
	c.User, c.Passwd = user, password
	return c.FormatDSN()
}

// Kafka returns the Kafka configuration of the test servers after checking that
// a broker answers.
func Kafka(t testing.TB) kafka.Config {
	t.Helper()
	NeedsServers(t, "Kafka")
	cfg := kafka.Config{Brokers: KafkaBrokers, ClientID: "onceflow-test"}.Defaults()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := cfg.EnsureTopics(ctx, nil); err != nil {
		Missing(t, "Kafka at "+strings.Join(cfg.Brokers, ","), err)
	}
	return cfg
}

// Topics creates a unique topic for each base name, with the given partitions,
// and returns their names in the same order.
func Topics(t testing.TB, kc kafka.Config, partitions int32, bases ...string) []string {
	t.Helper()
	names := make([]string, len(bases))
	specs := make([]kafka.TopicSpec, len(bases))
	for i, b := range bases {
		names[i] = strings.ReplaceAll(UniqueName(t, b), "_", "-")
		specs[i] = kafka.TopicSpec{Name: names[i], Partitions: partitions}
	}
	t.Cleanup(func() { deleteTopics(t, kc, names...) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kc.EnsureTopics(ctx, specs); err != nil {
		t.Fatalf("creating topics %v: %v", names, err)
	}
	return names
}

// TopicName returns a unique topic name for a topic that the code under test
// creates itself (with settings of its own, say); the topic is deleted when the
// test ends, if it was created.
func TopicName(t testing.TB, kc kafka.Config, base string) string {
	t.Helper()
	name := strings.ReplaceAll(UniqueName(t, base), "_", "-")
	t.Cleanup(func() { deleteTopics(t, kc, name) })
	return name
}

// Group returns a unique consumer group name. When the test ends, the group is
// deleted with every group named after it (name + "." + handler: the groups of
// consumer.Consumers' projections). Call it before starting the consumers that
// use it: cleanups run last-registered first, so theirs (which close them and
// leave the group) run before the deletion. A group with members left is
// reported as an error.
func Group(t testing.TB, kc kafka.Config, base string) string {
	t.Helper()
	name := UniqueName(t, base)
	t.Cleanup(func() { deleteGroups(t, kc, name) })
	return name
}

// ReadTopic consumes topic from the oldest offset with a new consumer group until
// it has n messages or timeout passes, and returns what it got (acknowledged).
// The group is deleted once its subscriber is closed.
func ReadTopic(t testing.TB, cfg kafka.Config, topic string, n int, timeout time.Duration) []*message.Message {
	t.Helper()
	group := UniqueName(t, "reader")
	sub, err := cfg.NewSubscriber(group, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer deleteGroups(t, cfg, group) // deferred first: runs after sub.Close
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	var got []*message.Message
	for len(got) < n {
		select {
		case m, ok := <-ch:
			if !ok {
				return got
			}
			m.Ack()
			got = append(got, m)
		case <-ctx.Done():
			return got
		}
	}
	return got
}

// MessageCount returns how many messages topic holds: over its partitions, the
// newest offset minus the oldest. It reads offsets only (no messages), so a test
// can assert that nothing was written, say to a poison topic, without waiting for
// messages that should not come. Our producers are not transactional, so no
// control records sit between the messages. It fails if Kafka or the topic
// cannot be reached.
func MessageCount(kc kafka.Config, topic string) (int64, error) {
	client, err := sarama.NewClient(kc.Brokers, kc.ConsumerConfig())
	if err != nil {
		return 0, err
	}
	defer client.Close()
	partitions, err := client.Partitions(topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range partitions {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, err
		}
		n += newest - oldest
	}
	return n, nil
}

// TopicSize is MessageCount that fails the test when Kafka cannot say.
func TopicSize(t testing.TB, cfg kafka.Config, topic string) int64 {
	t.Helper()
	n, err := MessageCount(cfg, topic)
	if err != nil {
		t.Fatalf("size of topic %s: %v", topic, err)
	}
	return n
}

// Checksums sums up the tables of db's database: "name=checksum " for each
// (CHECKSUM TABLE), by name, to compare it before and after something that
// must change nothing.
func Checksums(t testing.TB, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY table_name")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	var b strings.Builder
	for _, table := range tables {
		var name string
		var sum sql.NullInt64
		if err := db.QueryRow("CHECKSUM TABLE `"+table+"`").Scan(&name, &sum); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s=%d ", table, sum.Int64)
	}
	return b.String()
}

// CheckPruner checks retention.Pruner on one table: insert(i, at) adds row i
// with time at. 25 rows are older than a day, 5 younger: the old
// ones go, the young ones stay, no batch deletes more than its size (10), and a
// batch's DELETE uses index (the time column's).
func CheckPruner(t *testing.T, db *sql.DB, table, column, index string, now time.Time, insert func(i int, at time.Time) error) {
	t.Helper()
	const old, young, batch = 25, 5, 10
	for i := range old + young {
		at := now.Add(-48*time.Hour + time.Duration(i)*time.Minute)
		if i >= old {
			at = now.Add(-time.Duration(i) * time.Minute)
		}
		if err := insert(i, at); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (n int) {
		t.Helper()
		if err := db.QueryRow("SELECT COUNT(*) FROM `" + table + "`").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	cutoff := now.Add(-24 * time.Hour)
	p := retention.Pruner{DB: db, Table: table, Column: column, BatchSize: batch}

	var key sql.NullString
	rows, err := db.Query(fmt.Sprintf("EXPLAIN DELETE FROM `%s` WHERE `%s` < ? ORDER BY `%s` LIMIT %d", table, column, column, batch), cutoff)
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(sql.NullString)
		}
		if err := rows.Scan(vals...); err != nil {
			t.Fatal(err)
		}
		for i, c := range cols {
			if c == "key" {
				key = *vals[i].(*sql.NullString)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if key.String != index {
		t.Errorf("a batch DELETE uses index %q, want %q (else each batch scans the table)", key.String, index)
	}

	n, err := p.Batch(context.Background(), cutoff)
	if err != nil || n != batch {
		t.Fatalf("one batch deleted %d rows (%v), want exactly %d", n, err, batch)
	}
	deleted, batches, err := p.Prune(context.Background(), cutoff)
	if err != nil || deleted != old-batch || batches != 2 {
		t.Fatalf("Prune deleted %d rows in %d batches (%v), want %d in 2 (10 + 5)", deleted, batches, err, old-batch)
	}
	if got := count(); got != young {
		t.Fatalf("%d rows left, want the %d young ones", got, young)
	}
	if deleted, _, err := p.Prune(context.Background(), cutoff); err != nil || deleted != 0 {
		t.Fatalf("a second Prune deleted %d (%v), want 0", deleted, err)
	}
}

// CheckRowLock checks the contract both repositories' Update keep: the row lock
// taken by one Update is held until it commits. hold runs an Update whose fn
// calls inside() and then waits for release before changing the row; try runs a
// second Update of the same row through a pool with innodb_lock_wait_timeout=1.
// try must fail with a lock wait timeout (MariaDB error 1205) while hold is
// inside, hold must then commit, and try must succeed after it: the caller
// checks that try then read what hold wrote.
func CheckRowLock(t testing.TB, hold func(inside func(), release <-chan struct{}) error, try func() error) {
	t.Helper()
	entered, release, holdDone := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() { holdDone <- hold(func() { close(entered) }, release) }()
	<-entered
	err := try()
	close(release)
	if err := <-holdDone; err != nil {
		t.Fatalf("the first update failed: %v", err)
	}
	var myErr *mysql.MySQLError
	if !errors.As(err, &myErr) || myErr.Number != 1205 {
		t.Fatalf("an update while another held the row = %v; want a lock wait timeout (1205)", err)
	}
	if err := try(); err != nil {
		t.Fatalf("an update after the first committed: %v", err)
	}
}

// RepoDeps returns what a repository under test needs: its own pool on dsn (like
// another replica of the service; closed when the test ends) and an outbox with
// the default configuration.
func RepoDeps(t testing.TB, dsn string) (*sql.DB, *outbox.Outbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sqldb.Open(ctx, dsn, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, outbox.New()
}
