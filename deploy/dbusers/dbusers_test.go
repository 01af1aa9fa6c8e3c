package dbusers_test

import (
	"strings"
	"testing"

	"github.com/onceflow/onceflow/deploy/dbusers"
)

// TestFor: the statements of each file, for its own schema, are the file's (and
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
		if len(stmts) != 5 {
			t.Fatalf("%s: %d statements, want 5: %q", tpl.Schema, len(stmts), stmts)
		}
		for _, want := range []string{
			"CREATE DATABASE IF NOT EXISTS `" + tpl.Schema + "`",
			"IDENTIFIED BY '" + u.AppPassword + "'", "IDENTIFIED BY '" + u.MigratePassword + "'",
			"GRANT ALL PRIVILEGES ON `" + tpl.Schema + "`.* TO '" + u.Migrate + "'@'%'",
			"GRANT SELECT, INSERT, UPDATE, DELETE ON `" + tpl.Schema + "`.* TO '" + u.App + "'@'%'",
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
		if tu.App != "t_x_1_app" || !strings.Contains(all, "ON `t\\_x\\_1`.* TO 't_x_1_app'@'%'") ||
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
