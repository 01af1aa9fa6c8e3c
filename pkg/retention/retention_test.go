package retention_test

import (
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/retention"
)

// TestPrunerDeletesOldRowsInBatches (integration, real MariaDB), for the tables
// this package fills: rows older than the cutoff go, younger ones stay, no batch
// deletes more than its size, and each batch's DELETE walks the time index.
func TestPrunerDeletesOldRowsInBatches(t *testing.T) {
	t.Parallel()
	tables := []struct {
		table, column, index string
		insert               func(db *sql.DB, i int, at time.Time) error
	}{
		{"processed_messages", "processed_at", "processed_messages_processed_at", func(db *sql.DB, i int, at time.Time) error {
			_, err := db.Exec("INSERT INTO processed_messages (consumer_group, message_id, processed_at) VALUES ('g', ?, ?)",
				fmt.Sprintf("m-%d", i), at)
			return err
		}},
		{"poison_replays", "replayed_at", "poison_replays_replayed_at", func(db *sql.DB, i int, at time.Time) error {
			_, err := db.Exec("INSERT INTO poison_replays (poison_topic, poison_offset, message_id, replayed_at) VALUES ('p', ?, ?, ?)",
				i, fmt.Sprintf("m-%d", i), at)
			return err
		}},
	}
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	db := d.Open(t, 100) // as the service user
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, tt := range tables {
		t.Run(tt.table, func(t *testing.T) {
			testenv.CheckPruner(t, db, tt.table, tt.column, tt.index, now, func(i int, at time.Time) error { return tt.insert(db, i, at) })
		})
	}
}

func TestRetentionConfig(t *testing.T) {
	t.Parallel()
	if err := (retention.Config{}).Defaults().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, c := range map[string]retention.Config{
		"inbox window of an hour": {InboxMaxAge: time.Hour},
		"negative interval":       {Interval: -time.Second},
		"zero-row batches":        {BatchSize: -1},
	} {
		if err := c.Defaults().Validate(); err == nil {
			t.Errorf("%s: Validate() = nil, want an error", name)
		}
	}
}
