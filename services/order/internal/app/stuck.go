package app

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/onceflow/onceflow/pkg/apperr"
)

// NotDone is the port that finds the orders the saga has not finished:
// PENDING ones, and cancelled, paid ones waiting for their refund.
type NotDone interface {
	// NotDoneBefore returns up to limit ids of such orders that have waited
	// since before t (a PENDING order since its creation, one awaiting its
	// refund since its last change), oldest first.
	NotDoneBefore(ctx context.Context, t time.Time, limit int) ([]string, error)
	// OldestNotDone returns since when the oldest of them has waited (zero if
	// there is none).
	OldestNotDone(ctx context.Context) (time.Time, error)
}

// MaxStuck bounds the orders one stuck list diagnoses.
const MaxStuck = 200

// StuckGroup is the stuck orders that one cause holds.
type StuckGroup struct {
	// Cause is the cause's code ("" for an order nothing holds any more).
	Cause  string
	Orders []*Diagnosis
}

// StuckOrders returns the orders not done after olderThan (at most limit,
// 1 to MaxStuck, the oldest), each diagnosed, grouped by cause, the largest
// group first. Each diagnosis asks the payment service once. Errors:
// apperr.CodeInvalid for a bad limit or threshold, apperr.CodeUnavailable,
// apperr.CodeInternal.
func (s *Service) StuckOrders(ctx context.Context, olderThan time.Duration, limit int) ([]StuckGroup, error) {
	if limit < 1 || limit > MaxStuck || olderThan < 0 {
		return nil, &apperr.Error{Code: apperr.CodeInvalid, Message: fmt.Sprintf("limit must be between 1 and %d and older_than not negative", MaxStuck)}
	}
	ids, err := s.Diagnosis.NotDone.NotDoneBefore(ctx, s.Now().Add(-olderThan), limit)
	if err != nil {
		return nil, err
	}
	byCause := map[string]*StuckGroup{}
	var groups []*StuckGroup
	for _, id := range ids {
		d, err := s.Diagnose(ctx, id)
		if err != nil {
			return nil, err
		}
		cause := ""
		if d.Cause != nil {
			cause = d.Cause.Code
		}
		g, ok := byCause[cause]
		if !ok {
			g = &StuckGroup{Cause: cause}
			byCause[cause] = g
			groups = append(groups, g)
		}
		g.Orders = append(g.Orders, d)
	}
	sort.SliceStable(groups, func(i, j int) bool { return len(groups[i].Orders) > len(groups[j].Orders) })
	out := make([]StuckGroup, len(groups))
	for i, g := range groups {
		out[i] = *g
	}
	return out, nil
}

// OldestNotDoneAge is how long the oldest order the saga has not finished
// has waited (0 if there is none): the gauge
// onceflow_orders_oldest_not_done_age_seconds.
func (s *Service) OldestNotDoneAge(ctx context.Context) (time.Duration, error) {
	t, err := s.Diagnosis.NotDone.OldestNotDone(ctx)
	if err != nil || t.IsZero() {
		return 0, err
	}
	return max(s.Now().Sub(t), 0), nil
}
