// Package dbusers holds the database users of both services (ADR 0049): the
// SQL files order-db.sql and payment-db.sql, which deploy/local/infra.sh and
// compose run as root, and the same statements for any other database name, so
// that the integration tests (internal/testenv) and the e2e harness run the
// code under test with exactly the privileges a deployment gives it.
//
// Each service has two users on its own database and nothing on any other: a
// migration user (<schema>_migrate, every privilege on the schema: goose's DDL)
// and a service user (<schema>_app: SELECT, INSERT, UPDATE, DELETE only).
package dbusers

import (
	_ "embed"
	"fmt"
	"strings"
)

var (
	//go:embed order-db.sql
	orderSQL string
	//go:embed payment-db.sql
	paymentSQL string
)

// Users are the credentials of one schema's two users.
type Users struct {
	// Schema is the database they work on.
	Schema string
	// App and AppPassword: the service user (DML only).
	App, AppPassword string
	// Migrate and MigratePassword: the migration user (DDL on Schema only).
	Migrate, MigratePassword string
}

// Template is one of the two files: the statements for template schema Schema.
type Template struct {
	// Schema is the database name the file sets up ("orders" or "payments").
	Schema string
	// SQL is the file's text.
	SQL string
}

// Order and Payment are the files of order-db and payment-db.
var (
	Order   = Template{Schema: "orders", SQL: orderSQL}
	Payment = Template{Schema: "payments", SQL: paymentSQL}
)

// For returns the template's statements (comments removed, one per element, no
// trailing semicolon) for database schema instead of the template's, with the
// users and passwords renamed the same way (orders_app becomes <schema>_app),
// and the users' credentials. schema must be made of lower-case letters,
// digits and underscores; underscores are escaped in GRANT (where "_" would
// otherwise match any character), so each grant covers schema alone. It fails
// for any other name: the name is spliced into SQL.
func (t Template) For(schema string) ([]string, Users, error) {
	for _, r := range schema {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return nil, Users{}, fmt.Errorf("dbusers: schema name %q: only a-z, 0-9 and _ are allowed", schema)
		}
	}
	if schema == "" || len(schema)+len("_migrate") > 80 {
		return nil, Users{}, fmt.Errorf("dbusers: schema name %q: empty or too long for its user names", schema)
	}
	escaped := strings.ReplaceAll(schema, "_", `\_`)
	var code []string // the file without its comment lines
	for _, l := range strings.Split(t.SQL, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
			code = append(code, l)
		}
	}
	var stmts []string
	for _, s := range strings.Split(strings.Join(code, " "), ";") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		s = strings.ReplaceAll(s, "`"+t.Schema+"`.*", "\x00")
		s = strings.ReplaceAll(s, t.Schema, schema)
		stmts = append(stmts, strings.ReplaceAll(s, "\x00", "`"+escaped+"`.*"))
	}
	u := Users{Schema: schema, App: schema + "_app", AppPassword: schema + "_app",
		Migrate: schema + "_migrate", MigratePassword: schema + "_migrate"}
	return stmts, u, nil
}

// DropStatements returns the statements that remove the users of For(schema)
// (not the database).
func DropStatements(u Users) []string {
	return []string{
		fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", u.App),
		fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", u.Migrate),
	}
}
