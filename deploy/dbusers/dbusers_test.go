package dbusers_test

import (
	"strings"
	"testing"

	"github.com/onceflow/onceflow/deploy/dbusers"
)

// TestFor: the statements of each users file, for its own schema, are the file's (and
// name the users and passwords For returns); for a test database they name
// that database and its own users, with GRANT's wildcard "_" escaped; a name
// that could break out of the SQL is refused.
func TestFor(t *testing.T) {
	t.Parallel()
	for _, tpl := range []dbusers.Template{dbusers.Order, dbusers.Payment} {
		stmts, u, err := tpl.For(tpl.Schema)
		if err != nil {
			t.Fatal(err)
		}
		want := 4 // the database, two users, the migration user's grant
		if tpl.RelaySQL != "" {
			want += 2 // the relay user and its replication privileges
		}
		if len(stmts) != want {
			t.Fatalf("%s: %d statements, want %d: %q", tpl.Schema, len(stmts), want, stmts)
		}
		for _, want := range []string{
			"CREATE DATABASE IF NOT EXISTS `" + tpl.Schema + "`",
			"IDENTIFIED BY '" + u.AppPassword + "'", "IDENTIFIED BY '" + u.MigratePassword + "'",
			"GRANT ALL PRIVILEGES ON `" + tpl.Schema + "`.* TO '" + u.Migrate + "'@'%' WITH GRANT OPTION",
		} {
			if !strings.Contains(strings.Join(stmts, "\n"), want) {
				t.Errorf("%s: no %q in %q", tpl.Schema, want, stmts)
			}
		}
		test, tu, err := tpl.For("t_x_1")
		if err != nil {
			t.Fatal(err)
		}
		all := strings.Join(test, "\n")
		if tu.App != "t_x_1_app" || !strings.Contains(all, "ON `t\\_x\\_1`.* TO 't_x_1_migrate'@'%'") ||
			!strings.Contains(all, "CREATE USER IF NOT EXISTS 't_x_1_app'@'%'") ||
			strings.Contains(all, tpl.Schema) {
			t.Errorf("%s for t_x_1: %+v %q", tpl.Schema, tu, test)
		}
	}
	for _, bad := range []string{"", "a`b", "a'b", "A", "x;y", strings.Repeat("a", 80)} {
		if _, _, err := dbusers.Order.For(bad); err == nil {
			t.Errorf("For(%q) accepted", bad)
		}
	}
}

// TestAppGrants: each service user's privileges file gives, for any database
// and user name, one grant per table to that user (tables named without their
// database), then takes back the database-wide DML of earlier versions for that
// database alone (GRANT's "_" escaped). Both files give the patterns' tables
// the same privileges. The ledger is append-only and goose's version tables
// are read-only. A name that could break out of the SQL is refused.
func TestAppGrants(t *testing.T) {
	t.Parallel()
	byTable := map[string]map[string]string{} // template, table: the grant with the user named "u"
	for _, tpl := range []dbusers.Template{dbusers.Order, dbusers.Payment} {
		grants, err := tpl.AppGrants("t_x_1", "u")
		if err != nil {
			t.Fatal(err)
		}
		byTable[tpl.Schema] = map[string]string{}
		var wide []string
		for _, g := range grants {
			if strings.Contains(g.SQL, tpl.Schema+"_app") || strings.Contains(g.SQL, "`"+tpl.Schema+"`.") {
				t.Errorf("%s: %q names the template's user or database", tpl.Schema, g.SQL)
			}
			if g.Table == "" {
				wide = append(wide, g.SQL)
				continue
			}
			if !strings.HasPrefix(g.SQL, "GRANT ") || !strings.HasSuffix(g.SQL, " ON `"+g.Table+"` TO 'u'@'%'") {
				t.Errorf("%s: %q is not a grant on %s to u", tpl.Schema, g.SQL, g.Table)
			}
			if byTable[tpl.Schema][g.Table] != "" {
				t.Errorf("%s: two grants on %s", tpl.Schema, g.Table)
			}
			byTable[tpl.Schema][g.Table] = g.SQL
		}
		want := []string{"GRANT SELECT ON `t\\_x\\_1`.* TO 'u'@'%'", "REVOKE SELECT, INSERT, UPDATE, DELETE ON `t\\_x\\_1`.* FROM 'u'@'%'"}
		if strings.Join(wide, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: database-wide statements %q, want %q", tpl.Schema, wide, want)
		}
		for _, goose := range []string{"goose_db_version", "goose_outbox_version", "goose_outbox_parking_version", "goose_inbox_version", "goose_delayed_version", "goose_parkkey_version", "goose_poison_version", "goose_audit_version"} {
			if got := byTable[tpl.Schema][goose]; got != "GRANT SELECT ON `"+goose+"` TO 'u'@'%'" {
				t.Errorf("%s: %q, want SELECT only on %s", tpl.Schema, got, goose)
			}
		}
	}
	if got := byTable["payments"]["ledger"]; got != "GRANT SELECT, INSERT ON `ledger` TO 'u'@'%'" {
		t.Errorf("ledger: %q, want SELECT, INSERT only", got)
	}
	for table, g := range byTable["orders"] {
		if other, ok := byTable["payments"][table]; ok && other != g {
			t.Errorf("the two services' users differ on %s: %q, %q", table, g, other)
		}
	}
	for _, bad := range []struct{ schema, user string }{{"a`b", "u"}, {"x", "u'@'%' WITH GRANT OPTION --"}, {"x", ""}, {"x", "a b"}} {
		if _, err := dbusers.Order.AppGrants(bad.schema, bad.user); err == nil {
			t.Errorf("AppGrants(%q, %q) accepted", bad.schema, bad.user)
		}
	}
}
