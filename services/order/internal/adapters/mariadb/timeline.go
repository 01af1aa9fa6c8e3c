package mariadb

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/onceflow/onceflow/services/order/internal/app"
)

// Timeline implements app.Timeline in the table order_timeline.
type Timeline struct{ db *sql.DB }

// NewTimeline returns the timeline store on db.
func NewTimeline(db *sql.DB) *Timeline { return &Timeline{db: db} }

var _ app.Timeline = (*Timeline)(nil)

// Record implements app.Timeline: the Kafka position is unique, so a message
// delivered to the projection twice is recorded once. INSERT IGNORE also
// stores a field longer than its column, or not UTF-8, cut to fit instead of
// failing: the fields come from any message's headers, and a failed Record
// would be retried forever (TestTimelineRecordsAnyHeaders).
func (t *Timeline) Record(ctx context.Context, e app.TimelineEntry) error {
	var reason any
	var from string
	if e.Poisoned != nil {
		reason, from = e.Poisoned.ReasonCode, e.Poisoned.FromTopic
	}
	_, err := t.db.ExecContext(ctx, `INSERT IGNORE INTO order_timeline (order_id, topic, kafka_partition, kafka_offset,
		kafka_time, event_id, event_type, correlation_id, causation_id, causation_attempts, poisoned_reason,
		poisoned_from, replayed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		e.OrderID, e.Topic, e.Partition, e.Offset, e.At, e.EventID, e.EventType, e.CorrelationID, e.CausedBy,
		e.CausedByAttempts, reason, from, e.ReplayedAt)
	return storeErr(err)
}

// ForOrder implements app.Timeline.
func (t *Timeline) ForOrder(ctx context.Context, orderID string) ([]app.TimelineEntry, error) {
	rows, err := t.db.QueryContext(ctx, `SELECT topic, kafka_partition, kafka_offset, kafka_time, event_id, event_type,
		correlation_id, causation_id, causation_attempts, poisoned_reason, poisoned_from, replayed_at
		FROM order_timeline WHERE order_id = ? ORDER BY kafka_time, id`, orderID)
	if err != nil {
		return nil, storeErr(err)
	}
	defer rows.Close()
	list := []app.TimelineEntry{}
	for rows.Next() {
		e := app.TimelineEntry{OrderID: orderID}
		var reason sql.NullString
		var from string
		if err := rows.Scan(&e.Topic, &e.Partition, &e.Offset, &e.At, &e.EventID, &e.EventType, &e.CorrelationID,
			&e.CausedBy, &e.CausedByAttempts, &reason, &from, &e.ReplayedAt); err != nil {
			return nil, storeErr(fmt.Errorf("read timeline: %w", err))
		}
		if reason.Valid {
			e.Poisoned = &app.Poisoned{ReasonCode: reason.String, FromTopic: from}
		}
		list = append(list, e)
	}
	return list, storeErr(rows.Err())
}
