// Package dbusers holds the database users of both services and their
// privileges: the SQL files order-db.sql and payment-db.sql, which
// create the users and which deploy/local/infra.sh and compose run as root, and
// order-app.sql and payment-app.sql, the service user's privileges table by
// table, which the migration user grants after the migrations at every start
// (Template.OpenAndMigrate: MariaDB grants on a table only once it exists). For any other database name it gives
// the same statements, so that the integration tests (internal/testenv) and the
// e2e harness run the code under test with exactly the privileges a deployment
// gives it.
//
// Each service has two users on its own database and nothing on any other: a
// migration user (<schema>_migrate, every privilege on the schema, which it may
// grant: goose's DDL and the service user's grants) and a service user
// (<schema>_app: the DML its code runs, table by table, and no more).
package dbusers

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/onceflow/onceflow/pkg/sqldb"
)

var (
	//go:embed order-db.sql
	orderSQL string
	//go:embed payment-db.sql
	paymentSQL string
	//go:embed order-app.sql
	orderAppSQL string
	//go:embed payment-app.sql
	paymentAppSQL string
	//go:embed order-relay.sql
	orderRelaySQL string
)

// Users are the credentials of one schema's two users.
type Users struct {
	// Schema is the database they work on.
	Schema string
	// App and AppPassword: the service user (the DML of AppSQL, once granted).
	App, AppPassword string
	// Migrate and MigratePassword: the migration user (DDL on Schema only).
	Migrate, MigratePassword string
	// Relay is the relay user (Debezium's connector; "" when the template has none).
	Relay string
}

// Template is the files of one service database, written for template schema
// Schema.
type Template struct {
	// Schema is the database name the files set up ("orders" or "payments").
	Schema string
	// SQL is the users file's text (<server>.sql).
	SQL string
	// AppSQL is the text of the service user's privileges file (<service>-app.sql).
	AppSQL string
	// RelaySQL is the text of the relay user's table privileges file
	// (<service>-relay.sql; empty: the service has no relay user): granted
	// with AppSQL's, to <schema>_relay.
	RelaySQL string
}

// Order and Payment are the files of order-db and payment-db.
var (
	Order   = Template{Schema: "orders", SQL: orderSQL, AppSQL: orderAppSQL, RelaySQL: orderRelaySQL}
	Payment = Template{Schema: "payments", SQL: paymentSQL, AppSQL: paymentAppSQL}
)

// For returns the template's statements (comments removed, one per element, no
// trailing semicolon) for database schema instead of the template's, with the
// users and passwords renamed the same way (orders_app becomes <schema>_app),
// and the users' credentials. schema must be made of lower-case letters,
// digits and underscores; underscores are escaped in GRANT (where "_" would
// otherwise match any character), so each grant covers schema alone. It fails
// for any other name: the name is spliced into SQL.
func (t Template) For(schema string) ([]string, Users, error) {
	if err := checkSchema(schema); err != nil {
		return nil, Users{}, err
	}
	var stmts []string
	for _, s := range statements(t.SQL) {
		s = strings.ReplaceAll(s, "`"+t.Schema+"`.*", "\x00")
		s = strings.ReplaceAll(s, t.Schema, schema)
		stmts = append(stmts, strings.ReplaceAll(s, "\x00", grantSchema(schema)))
	}
	u := Users{Schema: schema, App: schema + "_app", AppPassword: schema + "_app",
		Migrate: schema + "_migrate", MigratePassword: schema + "_migrate"}
	if t.RelaySQL != "" {
		u.Relay = schema + "_relay"
	}
	return stmts, u, nil
}

// checkSchema refuses a schema name that is not made of lower-case letters,
// digits and underscores, or is empty or too long for its user names: the name
// is spliced into SQL.
func checkSchema(schema string) error {
	for _, r := range schema {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return fmt.Errorf("dbusers: schema name %q: only a-z, 0-9 and _ are allowed", schema)
		}
	}
	if schema == "" || len(schema)+len("_migrate") > 80 {
		return fmt.Errorf("dbusers: schema name %q: empty or too long for its user names", schema)
	}
	return nil
}

// grantSchema is "`schema`.*" with GRANT's wildcard "_" escaped, so that a
// grant covers schema alone.
func grantSchema(schema string) string {
	return "`" + strings.ReplaceAll(schema, "_", `\_`) + "`.*"
}

// statements splits a file into its statements: comment lines removed, no
// trailing semicolon.
func statements(text string) []string {
	var code []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
			code = append(code, l)
		}
	}
	var stmts []string
	for _, s := range strings.Split(strings.Join(code, " "), ";") {
		if s = strings.TrimSpace(s); s != "" {
			stmts = append(stmts, s)
		}
	}
	return stmts
}

// AppGrant is one statement of a service user's privileges file.
type AppGrant struct {
	// Table is the table it grants on; "" for the statements on the whole
	// database (taking back what earlier versions granted).
	Table string
	// SQL is the statement. Its tables are named without their database: run
	// it with the service's database as the connection's default database.
	SQL string
}

var (
	grantTableRe = regexp.MustCompile("^GRANT .* ON `([a-z_]+)` TO '[a-z_]+'@'%'$")
	userNameRe   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,80}$`)
)

// AppGrants returns the statements of the template's service-user privileges
// file (AppSQL) for database schema and service user user ('user'@'%'), in the
// file's order: the grants table by table, then the removal of the
// database-wide privileges earlier versions granted. schema must be a valid
// name (see For); user is spliced into SQL too, so it must be 1-80 letters,
// digits, '_', '.' or '-'.
func (t Template) AppGrants(schema, user string) ([]AppGrant, error) {
	if err := checkSchema(schema); err != nil {
		return nil, err
	}
	if !userNameRe.MatchString(user) {
		return nil, fmt.Errorf("dbusers: user name %q: only A-Z, a-z, 0-9, _, . and - are allowed", user)
	}
	var grants []AppGrant
	for _, s := range statements(t.AppSQL) {
		var table string
		if m := grantTableRe.FindStringSubmatch(s); m != nil {
			table = m[1]
		}
		s = strings.ReplaceAll(s, "`"+t.Schema+"`.*", grantSchema(schema))
		s = strings.ReplaceAll(s, "'"+t.Schema+"_app'@", "'"+user+"'@")
		grants = append(grants, AppGrant{Table: table, SQL: s})
	}
	return grants, nil
}

// RelayGrants returns the statements of the template's relay user privileges
// file (RelaySQL) for database schema, granting to <schema>_relay (the user
// For creates), in the file's order; none if the template has no relay user.
// Like AppGrants' they name their tables without the database.
func (t Template) RelayGrants(schema string) []string {
	var stmts []string
	for _, s := range statements(t.RelaySQL) {
		stmts = append(stmts, strings.ReplaceAll(s, "'"+t.Schema+"_relay'@", "'"+schema+"_relay'@"))
	}
	return stmts
}

// OpenAndMigrate opens a service's database as sqldb.OpenAndMigrate does
// and gives the service user its privileges on the way, at every start: with
// c.MigrateDSN set, it migrates as the migration user, who then grants the
// service user of c.DSN the privileges of the template's -app.sql (AppGrants:
// the tables must exist, so after the migrations), and only then opens the
// service's pool, so that each of its sessions begins with exactly those
// privileges (a session keeps the database-wide privileges it began with).
// Replicas starting together take turns on a MariaDB named lock for the
// grants. A table of the file that does not exist is an error. Without
// c.MigrateDSN the deployment grants by other means, and this is
// sqldb.OpenAndMigrate.
func (t Template) OpenAndMigrate(ctx context.Context, c sqldb.Config, logger *slog.Logger, sets ...sqldb.Migrations) (*sql.DB, error) {
	if c.MigrateDSN != "" {
		c = c.Defaults()
		if err := c.Validate(); err != nil {
			return nil, err
		}
		migrator := sqldb.Config{DSN: c.MigrateDSN, MaxOpenConns: 2, StartupTimeout: c.StartupTimeout}
		mdb, err := sqldb.OpenAndMigrate(ctx, migrator, logger, sets...)
		if err != nil {
			return nil, fmt.Errorf("as the migration user: %w", err)
		}
		err = t.grant(ctx, mdb, c.DSN)
		mdb.Close()
		if err != nil {
			return nil, fmt.Errorf("as the migration user, granting the service user its privileges: %w", err)
		}
		c.MigrateDSN = "" // migrated: the service user's own check only reads goose's version tables
	}
	return sqldb.OpenAndMigrate(ctx, c, logger, sets...)
}

// grant runs AppGrants for the user and database of serviceDSN on db (the
// migration user's pool on that database), on one session holding a named lock.
// It does nothing when db's user is the service user.
func (t Template) grant(ctx context.Context, db *sql.DB, serviceDSN string) error {
	sc, err := mysql.ParseDSN(serviceDSN)
	if err != nil {
		return err
	}
	conn, err := db.Conn(ctx) // one session: the named lock is the session's
	if err != nil {
		return err
	}
	defer conn.Close()
	var self bool
	if err := conn.QueryRowContext(ctx, "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1) = ?", sc.User).Scan(&self); err != nil || self {
		return err
	}
	grants, err := t.AppGrants(sc.DBName, sc.User)
	if err != nil {
		return err
	}
	lock := "onceflow_grants_" + sc.DBName
	var ok sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 60)", lock).Scan(&ok); err != nil {
		return err
	}
	if ok.Int64 != 1 {
		return errors.New("could not take the lock " + lock + " within 60 s")
	}
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK(?)", lock) }()
	stmts := make([]string, 0, len(grants))
	for _, g := range grants {
		stmts = append(stmts, g.SQL)
	}
	stmts = append(stmts, t.RelayGrants(sc.DBName)...)
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// DropStatements returns the statements that remove the users of For(schema)
// (not the database).
func DropStatements(u Users) []string {
	stmts := []string{
		fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", u.App),
		fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", u.Migrate),
	}
	if u.Relay != "" {
		stmts = append(stmts, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", u.Relay))
	}
	return stmts
}
