package sqldb_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// TestOpenSessionsAreReadCommitted (integration): every session of a pool
// opened by Open is READ COMMITTED, and InTx on it sends no `SET TRANSACTION
// ISOLATION LEVEL` (Com_set_option does not move); on a plain pool (negative
// control) InTx sends one per transaction to get the same isolation.
func TestOpenSessionsAreReadCommitted(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	plain, ctx := d.Admin, context.Background()
	opened, err := sqldb.Open(ctx, d.DSN, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer opened.Close()
	plain.SetMaxOpenConns(1)

	var level string
	if err := opened.QueryRowContext(ctx, "SELECT @@SESSION.tx_isolation").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "READ-COMMITTED" {
		t.Fatalf("an sqldb.Open session is %s, want READ-COMMITTED", level)
	}
	for _, tt := range []struct {
		name    string
		db      *sql.DB
		wantSet int
	}{{"sqldb.Open pool", opened, 0}, {"plain pool (negative control)", plain, 3}} {
		setOptions := func() (n int) {
			t.Helper()
			var name string
			if err := tt.db.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Com_set_option'").Scan(&name, &n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := setOptions()
		for range 3 {
			if err := sqldb.InTx(ctx, tt.db, func(ctx context.Context, tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, "SELECT 1")
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		if got := setOptions() - before; got != tt.wantSet {
			t.Errorf("%s: %d SET statements for 3 transactions, want %d", tt.name, got, tt.wantSet)
		}
	}
}
