package mariadb

import (
	"context"
	"database/sql"
	"errors"

	"github.com/onceflow/onceflow/pkg/dryrun"
)

// OrderState is the state a dry run shows of an order (poison.DryRunConfig):
// its row as the handler's transaction sees it, nil if there is none.
func OrderState(orderID string) dryrun.State {
	return func(ctx context.Context, tx *sql.Tx) (any, error) {
		var s struct {
			Status        string `json:"status"`
			Version       int    `json:"version"`
			Paid          bool   `json:"paid"`
			Refunded      bool   `json:"refunded"`
			RefundFailure string `json:"refund_failure,omitempty"`
		}
		err := tx.QueryRowContext(ctx, "SELECT status, version, paid, refunded, refund_failure FROM orders WHERE id = ?", orderID).
			Scan(&s.Status, &s.Version, &s.Paid, &s.Refunded, &s.RefundFailure)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil
		}
		return s, err
	}
}
