package mariadb_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/services/order/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// TestTimelinePruning (integration, real MariaDB): the retention job's pruner on
// order_timeline deletes old entries in bounded batches through the kafka_time
// index and keeps the young ones.
func TestTimelinePruning(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, mariadb.Migrations)
	db := d.Open(t, 100) // as the service user
	tl := mariadb.NewTimeline(db)
	testenv.CheckPruner(t, db, "order_timeline", "kafka_time", "order_timeline_kafka_time", time.Now().UTC().Truncate(time.Microsecond),
		func(i int, at time.Time) error {
			return tl.Record(context.Background(), app.TimelineEntry{OrderID: "o-1", Topic: "orders", Offset: int64(i), At: at,
				EventID: fmt.Sprintf("e-%d", i), EventType: "order.placed"})
		})
}
