package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/pkg/sqldb"
)

// Backlog is what waits in a service's outbox.
type Backlog struct {
	// Pending is the number of rows waiting: exact up to BacklogExactLimit
	// rows, an upper bound above (see ReadBacklog).
	Pending int64
	// OldestAge is how long the oldest waiting row has waited (0 if none),
	// by the database's clock.
	OldestAge time.Duration
}

// BacklogExactLimit bounds the index entries one backlog sample counts.
const BacklogExactLimit = 10000

// ReadBacklog samples the outbox of db cheaply enough to run every second
// under any backlog. Each query reads at most BacklogExactLimit+1 entries of
// the primary key (InnoDB counts them in the clustered index; no row is
// locked, the reads are consistent snapshots):
//
//   - pending: sqldb.CountUpTo, a COUNT(*) over a LIMITed subquery; when it
//     hits the limit the backlog is large and MAX(offset)-MIN(offset)+1 (two
//     reads at the ends of the primary key) is reported instead, an upper
//     bound (rolled-back inserts and parked rows leave gaps);
//   - oldest age: the created_at of the row with the smallest offset (ORDER BY
//     offset LIMIT 1, one read at the start of the primary key), subtracted
//     from the database's CURRENT_TIMESTAMP so that clock skew does not count.
//
// It fails if the database does not answer.
func ReadBacklog(ctx context.Context, db *sql.DB) (Backlog, error) {
	var b Backlog
	var err error
	if b.Pending, err = sqldb.CountUpTo(ctx, db, Table, "offset", BacklogExactLimit); err != nil {
		return b, err
	}
	var age sql.NullInt64
	err = db.QueryRowContext(ctx,
		"SELECT TIMESTAMPDIFF(MICROSECOND, created_at, CURRENT_TIMESTAMP(6)) FROM `"+Table+"` ORDER BY `offset` LIMIT 1").Scan(&age)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return b, fmt.Errorf("outbox oldest row: %w", err)
	case age.Valid && age.Int64 > 0:
		b.OldestAge = time.Duration(age.Int64) * time.Microsecond
	}
	return b, nil
}
