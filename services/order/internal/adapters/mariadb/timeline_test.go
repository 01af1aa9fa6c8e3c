package mariadb_test

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/services/order/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// TestTimelinePruning (integration, real MariaDB): the retention job's pruner on
// order_timeline deletes old entries in bounded batches through the kafka_time
// index and keeps the young ones.
func TestTimelinePruning(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t, testenv.OrderDBAddr)
	migrations, err := fs.Sub(mariadb.Migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if err := messaging.Migrate(context.Background(), db, migrations, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	tl := mariadb.NewTimeline(db)
	testenv.CheckPruner(t, db, "order_timeline", "kafka_time", "order_timeline_kafka_time", time.Now().UTC().Truncate(time.Microsecond),
		func(i int, at time.Time) error {
			return tl.Record(context.Background(), app.TimelineEntry{OrderID: "o-1", Topic: "orders", Offset: int64(i), At: at,
				EventID: fmt.Sprintf("e-%d", i), EventType: "order.placed"})
		})
}
