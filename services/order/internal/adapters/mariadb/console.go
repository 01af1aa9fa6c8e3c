package mariadb

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// ConsoleStats answers the live console's cheap queries for the
// figures the service's metrics do not give it. Each query reads an index range
// or a table the forwarder keeps small, never the whole orders table, so the
// console may run them every second.
type ConsoleStats struct{ db *sql.DB }

// NewConsoleStats returns the console's queries on db.
func NewConsoleStats(db *sql.DB) *ConsoleStats { return &ConsoleStats{db: db} }

// consoleStatuses are the statuses the recent-orders query walks, one index
// range (orders_status_created) each.
var consoleStatuses = []domain.Status{domain.StatusPending, domain.StatusConfirmed, domain.StatusCancelled}

// RecentOrders returns up to limit orders, newest first: the newest limit of
// each status (an index range each), merged. It fails if the database does not answer.
func (s *ConsoleStats) RecentOrders(ctx context.Context, limit int) ([]*domain.Order, error) {
	var list []*domain.Order
	for _, st := range consoleStatuses {
		rows, err := s.db.QueryContext(ctx, "SELECT "+orderColumns+
			" FROM orders WHERE status = ? ORDER BY created_at DESC LIMIT ?", st, limit)
		if err != nil {
			return nil, storeErr(err)
		}
		for rows.Next() {
			o, err := scanOrder(rows)
			if err != nil {
				rows.Close()
				return nil, storeErr(err)
			}
			list = append(list, o)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, storeErr(err)
		}
	}
	sortNewestFirst(list)
	if len(list) > limit {
		list = list[:limit]
	}
	return list, nil
}

// sortNewestFirst orders list by created_at descending (id breaks ties).
func sortNewestFirst(list []*domain.Order) {
	slices.SortFunc(list, func(a, b *domain.Order) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
}

// OrdersSince counts the orders created at or after since (an index range per
// status). It fails if the database does not answer.
func (s *ConsoleStats) OrdersSince(ctx context.Context, since time.Time) (int64, error) {
	var total int64
	for _, st := range consoleStatuses {
		var n int64
		if err := s.db.QueryRowContext(ctx,
			"SELECT COUNT(*) FROM orders WHERE status = ? AND created_at >= ?", st, since).Scan(&n); err != nil {
			return 0, storeErr(err)
		}
		total += n
	}
	return total, nil
}

// OutboxBacklog returns how many events wait in the outbox and the age in
// seconds of the oldest (0 when empty). The forwarder deletes each row Kafka
// acknowledged, so the table holds only the backlog and counting it is cheap
// unless Kafka has been away for long. It fails if the database does not answer.
func (s *ConsoleStats) OutboxBacklog(ctx context.Context) (rows int64, oldestAgeSeconds float64, err error) {
	var age sql.NullInt64
	err = s.db.QueryRowContext(ctx, "SELECT COUNT(*), TIMESTAMPDIFF(SECOND, MIN(created_at), CURRENT_TIMESTAMP) "+
		"FROM watermill_outbox WHERE acked = FALSE").Scan(&rows, &age)
	if err != nil {
		return 0, 0, storeErr(err)
	}
	if age.Valid && age.Int64 > 0 {
		oldestAgeSeconds = float64(age.Int64)
	}
	return rows, oldestAgeSeconds, nil
}
