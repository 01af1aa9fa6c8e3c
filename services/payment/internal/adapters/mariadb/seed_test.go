package mariadb_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/servicedb"
	"github.com/onceflow/onceflow/pkg/sqldb"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/mariadb"
)

// TestMigrationsSeedNoAccounts (integration, real MariaDB): a deployment's
// migrations create no account at all; the demo customers come from
// deploy/demo/accounts.sql, which the local/dev setup loads (twice is harmless,
// and a used account keeps its balance). An account that exists when the
// migrations run again (e.g. one the retired seed migration inserted and that a
// real customer may use by now) is kept.
func TestMigrationsSeedNoAccounts(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t, testenv.PaymentDBAddr)
	migrate := func() {
		t.Helper()
		if err := sqldb.Migrate(context.Background(), db, slog.New(slog.DiscardHandler), servicedb.Migrations(mariadb.Migrations)...); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (n int) {
		t.Helper()
		if err := db.QueryRow("SELECT COUNT(*) FROM accounts").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	migrate()
	if n := count(); n != 0 {
		t.Fatalf("the migrations created %d accounts, want 0 (demo data belongs to the dev setup)", n)
	}

	_, file, _, _ := runtime.Caller(0)
	seed, err := os.ReadFile(filepath.Join(filepath.Dir(file), "../../../../../deploy/demo/accounts.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := db.Exec(string(seed)); err != nil {
			t.Fatalf("loading deploy/demo/accounts.sql: %v", err)
		}
	}
	if n := count(); n != 4 {
		t.Fatalf("after the demo seed: %d accounts, want 4", n)
	}

	if _, err := db.Exec("UPDATE accounts SET balance_cents = 123 WHERE customer_id = 'c-1'"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(seed)); err != nil {
		t.Fatal(err)
	}
	migrate()
	var balance int64
	if err := db.QueryRow("SELECT balance_cents FROM accounts WHERE customer_id = 'c-1'").Scan(&balance); err != nil {
		t.Fatalf("c-1 is gone after seeding and migrating again: %v", err)
	}
	if balance != 123 {
		t.Fatalf("c-1 has %d cents after seeding and migrating again, want its own 123", balance)
	}
}
