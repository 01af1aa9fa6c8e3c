package outbox_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// TestReadBacklogSamplesThePrimaryKey: an empty outbox is 0 rows, age 0;
// rows written into the outbox are counted, and the oldest one's age is
// measured by the database's clock.
func TestReadBacklogSamplesThePrimaryKey(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t, testenv.OrderDBAddr)
	if err := sqldb.Migrate(context.Background(), db, slog.New(slog.DiscardHandler), outbox.Migrations); err != nil {
		t.Fatal(err)
	}
	b, err := outbox.ReadBacklog(context.Background(), db)
	if err != nil || b != (outbox.Backlog{}) {
		t.Fatalf("empty outbox: %+v, %v; want zero", b, err)
	}
	if _, err := db.Exec("INSERT INTO watermill_outbox (uuid, payload, metadata, created_at) VALUES ('a', '{}', '{}', CURRENT_TIMESTAMP - INTERVAL 30 SECOND), ('b', '{}', '{}', CURRENT_TIMESTAMP)"); err != nil {
		t.Fatal(err)
	}
	b, err = outbox.ReadBacklog(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if b.Pending != 2 || b.OldestAge < 29*time.Second || b.OldestAge > 10*time.Minute {
		t.Fatalf("backlog %+v; want 2 rows, the oldest about 30 s old", b)
	}
}
