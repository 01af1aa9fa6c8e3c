package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/onceflow/onceflow/pkg/audit"
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

// Seen returns which of rs's events the timeline recorded on topic (by its
// order index): the delivery auditor's read-back of the order events.
func (t *Timeline) Seen(ctx context.Context, topic string, rs []audit.Receipt) (map[string]bool, error) {
	seen := map[string]bool{}
	if len(rs) == 0 {
		return seen, nil
	}
	keys, ids := make([]string, len(rs)), make([]string, len(rs))
	args := []any{topic}
	for i, r := range rs {
		keys[i], ids[i] = "?", "?"
		args = append(args, r.Key)
	}
	for _, r := range rs {
		args = append(args, r.EventID)
	}
	//nolint:gosec // G202: only "?" placeholders are joined into the query
	rows, err := t.db.QueryContext(ctx, "SELECT event_id FROM order_timeline WHERE topic = ? AND order_id IN ("+strings.Join(keys, ",")+
		") AND event_id IN ("+strings.Join(ids, ",")+")", args...)
	if err != nil {
		return nil, storeErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, storeErr(err)
		}
		seen[id] = true
	}
	return seen, storeErr(rows.Err())
}
