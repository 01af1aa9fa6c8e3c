package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/onceflow/onceflow/services/order/internal/app"
)

// awaitingRefund selects the cancelled, paid orders still waiting for their
// refund (the index orders_awaiting_refund).
const awaitingRefund = "status = 'CANCELLED' AND paid = TRUE AND refunded = FALSE AND refund_failure = ''"

var _ app.NotDone = (*Orders)(nil)

// NotDoneBefore implements app.NotDone: two range scans of an index, each
// LIMITed.
func (r *Orders) NotDoneBefore(ctx context.Context, t time.Time, limit int) ([]string, error) {
	rows, err := r.db.QueryContext(ctx, `(SELECT id, created_at AS since FROM orders WHERE status = 'PENDING' AND created_at < ?
		ORDER BY created_at LIMIT ?) UNION ALL (SELECT id, updated_at AS since FROM orders WHERE `+awaitingRefund+`
		AND updated_at < ? ORDER BY updated_at LIMIT ?) ORDER BY since LIMIT ?`, t, limit, t, limit, limit)
	if err != nil {
		return nil, storeErr(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		var since time.Time
		if err := rows.Scan(&id, &since); err != nil {
			return nil, storeErr(err)
		}
		ids = append(ids, id)
	}
	return ids, storeErr(rows.Err())
}

// OldestNotDone implements app.NotDone: the first entry of each index range.
func (r *Orders) OldestNotDone(ctx context.Context) (time.Time, error) {
	var oldest time.Time
	for _, q := range []string{
		"SELECT created_at FROM orders WHERE status = 'PENDING' ORDER BY created_at LIMIT 1",
		"SELECT updated_at FROM orders WHERE " + awaitingRefund + " ORDER BY updated_at LIMIT 1",
	} {
		var t time.Time
		err := r.db.QueryRowContext(ctx, q).Scan(&t)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return time.Time{}, storeErr(err)
		}
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	return oldest, nil
}
