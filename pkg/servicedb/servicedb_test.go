package servicedb_test

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/servicedb"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// oldSet is the single migration set every pattern's tables came from before
// each pattern had its own (goose_messaging_version, at version 6), as
// databases migrated then have it.
var oldSet = sqldb.Migrations{Table: "goose_messaging_version", FS: os.DirFS("testdata/messaging_v6")}

// TestMigrationsRunOnFreshAndOldDatabases: the patterns' migration sets
// create every table on an empty database, and run without error on a
// database migrated by the old single set (each table and index exists
// already: IF NOT EXISTS), leaving that set's version table as it was; a
// second run applies nothing.
func TestMigrationsRunOnFreshAndOldDatabases(t *testing.T) {
	t.Parallel()
	ctx, logger := context.Background(), slog.New(slog.DiscardHandler)
	tables := []string{"watermill_outbox", "outbox_parked", "processed_messages", "consumer_requeue",
		"consumer_parked_keys", "consumer_parked_messages", "poison_replays"}
	for _, tt := range []struct {
		name string
		old  bool
	}{{"fresh database", false}, {"database of the old single set", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := testenv.NewDB(t, testenv.OrderDBAddr)
			if tt.old {
				if err := sqldb.Migrate(ctx, db, logger, oldSet); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 {
				if err := sqldb.Migrate(ctx, db, logger, servicedb.Migrations(nil)...); err != nil {
					t.Fatalf("migrating: %v", err)
				}
			}
			for _, table := range tables {
				var n int
				if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?", table).Scan(&n); err != nil || n != 1 {
					t.Errorf("table %s: %d, %v; want it", table, n, err)
				}
			}
			var idx int
			if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND index_name = 'poison_replays_replayed_at'").Scan(&idx); err != nil || idx != 1 {
				t.Errorf("index poison_replays_replayed_at: %d columns, %v; want one", idx, err)
			}
			if tt.old {
				var v int
				if err := db.QueryRow("SELECT MAX(version_id) FROM goose_messaging_version").Scan(&v); err != nil || v != 6 {
					t.Errorf("goose_messaging_version at %d, %v; want 6, untouched", v, err)
				}
			}
		})
	}
}
