package mariadb_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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

// TestTimelineRecordsAnyHeaders (integration, real MariaDB): the projection
// records whatever a message's headers say and retries a failed Record
// forever, so a header longer than its column or not UTF-8 must not fail the
// INSERT, or one such message would stop the topic's timeline for good. INSERT
// IGNORE turns MariaDB's strict-mode errors ("Data too long", "Incorrect string
// value") into warnings: each field is stored cut to its column, as valid
// UTF-8. (Found while looking for decoders of untrusted bytes, ADR 48: the
// headers reach this table unchecked.)
func TestTimelineRecordsAnyHeaders(t *testing.T) {
	t.Parallel()
	tl := mariadb.NewTimeline(newEnv(t).db) // the service's own connection settings
	long := strings.Repeat("é", 300)
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	in := app.TimelineEntry{OrderID: "o-1", Topic: "orders", Offset: 1, At: at, EventID: long, EventType: "bad\xff" + long,
		CorrelationID: long, CausedBy: long, ReplayedAt: long, Poisoned: &app.Poisoned{ReasonCode: "invalid_event", FromTopic: long}}
	if err := tl.Record(context.Background(), in); err != nil {
		t.Fatalf("Record: %v", err)
	}
	got, err := tl.ForOrder(context.Background(), "o-1")
	if err != nil || len(got) != 1 {
		t.Fatalf("ForOrder: %v, %d entries", err, len(got))
	}
	e := got[0]
	for _, f := range []struct {
		name, value string
		max         int
	}{{"event_id", e.EventID, 255}, {"event_type", e.EventType, 64}, {"correlation_id", e.CorrelationID, 128},
		{"causation_id", e.CausedBy, 255}, {"replayed_at", e.ReplayedAt, 64}, {"poisoned_from", e.Poisoned.FromTopic, 255}} {
		if n := utf8.RuneCountInString(f.value); n != f.max || !utf8.ValidString(f.value) {
			t.Errorf("%s: %d characters (valid UTF-8: %v), want the first %d", f.name, n, utf8.ValidString(f.value), f.max)
		}
	}
}
