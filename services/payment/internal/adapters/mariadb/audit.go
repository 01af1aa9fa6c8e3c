package mariadb

import (
	"context"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/pkg/audit"
	"github.com/onceflow/onceflow/services/payment/internal/domain"
)

// ledgerAuditBatch bounds the ledger rows one pass of the ledger check reads.
const ledgerAuditBatch = 5000

// LedgerChecks are the auditor's checks of the ledger: an order charged more
// than once (double_charge) or refunded more than it was charged
// (over_refund), as the fault suite's checker counts them. Each pass reads the
// orders of the next ledgerAuditBatch ledger rows older than settle and sums
// all of their rows (by the ledger_order index). settle keeps a pass from
// moving past the id of a row whose transaction is still open.
func (r *Payments) LedgerChecks(settle time.Duration) []audit.Check {
	return []audit.Check{
		{Name: "double_charge", Scopes: []string{"ledger"}, Run: r.auditLedger(settle, doubleCharge)},
		{Name: "over_refund", Scopes: []string{"ledger"}, Run: r.auditLedger(settle, overRefund)},
	}
}

// ledgerSums is what the ledger holds for one order.
type ledgerSums struct {
	orderID                     string
	charges                     int
	chargedCents, refundedCents int64
}

func doubleCharge(s ledgerSums) (string, bool) {
	return fmt.Sprintf("%d charges, %d cents", s.charges, s.chargedCents), s.charges > 1
}

func overRefund(s ledgerSums) (string, bool) {
	return fmt.Sprintf("refunded %d cents of %d charged", s.refundedCents, s.chargedCents), s.refundedCents > s.chargedCents
}

// auditLedger returns the Run of a ledger check that reports the orders for
// which broken says so.
func (r *Payments) auditLedger(settle time.Duration, broken func(ledgerSums) (string, bool)) func(context.Context, int64) ([]audit.Violation, int64, error) {
	return func(ctx context.Context, after int64) ([]audit.Violation, int64, error) {
		var upTo int64
		if err := r.db.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), ?) FROM (SELECT id FROM ledger WHERE id > ? AND created_at < ? ORDER BY id LIMIT ?) batch",
			after, after, time.Now().UTC().Add(-settle), ledgerAuditBatch).Scan(&upTo); err != nil {
			return nil, after, fmt.Errorf("ledger batch: %w", err)
		}
		if upTo == after {
			return nil, after, nil
		}
		rows, err := r.db.QueryContext(ctx, `SELECT order_id, SUM(kind = ?), SUM(IF(kind = ?, amount_cents, 0)), SUM(IF(kind = ?, amount_cents, 0))
			FROM ledger WHERE order_id IN (SELECT order_id FROM ledger WHERE id > ? AND id <= ?) GROUP BY order_id`,
			domain.MovementCharge, domain.MovementCharge, domain.MovementRefund, after, upTo)
		if err != nil {
			return nil, after, fmt.Errorf("ledger sums: %w", err)
		}
		defer rows.Close()
		var found []audit.Violation
		for rows.Next() {
			var s ledgerSums
			if err := rows.Scan(&s.orderID, &s.charges, &s.chargedCents, &s.refundedCents); err != nil {
				return nil, after, fmt.Errorf("ledger sums: %w", err)
			}
			if detail, ok := broken(s); ok {
				found = append(found, audit.Violation{Scope: "ledger", Subject: s.orderID, Detail: detail})
			}
		}
		if err := rows.Err(); err != nil {
			return nil, after, fmt.Errorf("ledger sums: %w", err)
		}
		return found, upTo, nil
	}
}
