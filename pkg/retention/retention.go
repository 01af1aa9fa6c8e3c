package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/onceflow/onceflow/pkg/jobs"
)

// Config bounds the tables the patterns fill. Old rows are deleted by
// periodic jobs (Retain), in batches of BatchSize rows. A service nests it as
// <PREFIX>_RETENTION_*, e.g. ORDER_RETENTION_INBOX_MAX_AGE.
type Config struct {
	// InboxMaxAge is the inbox's dedup window: processed_messages rows older than
	// this are deleted. It must exceed the event topics' Kafka retention (7 days
	// by default) plus any consumer lag, so that Kafka can no longer redeliver a
	// message whose row is gone. Default 14 days; at least 24 h.
	InboxMaxAge time.Duration `env:"INBOX_MAX_AGE"`
	// PoisonReplaysMaxAge: records of poison replays (poison_replays) older than
	// this are deleted; the poison tooling then lists such a message as not
	// replayed (replaying it again is harmless). Default 90 days.
	PoisonReplaysMaxAge time.Duration `env:"POISON_REPLAYS_MAX_AGE"`
	// Interval is how often the pruning job runs. Default 1 h.
	Interval time.Duration `env:"INTERVAL"`
	// BatchSize is the most rows one DELETE removes. Default 1000 (1..100000).
	BatchSize int `env:"BATCH_SIZE"`
}

// Defaults returns c with zero fields set to their defaults.
func (c Config) Defaults() Config {
	if c.InboxMaxAge == 0 {
		c.InboxMaxAge = 14 * 24 * time.Hour
	}
	if c.PoisonReplaysMaxAge == 0 {
		c.PoisonReplaysMaxAge = 90 * 24 * time.Hour
	}
	if c.Interval == 0 {
		c.Interval = time.Hour
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	return c
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.InboxMaxAge < 24*time.Hour {
		errs = append(errs, fmt.Errorf("retention: inbox max age %s is below 24h (the dedup window must outlast Kafka's redeliveries)", c.InboxMaxAge))
	}
	if c.PoisonReplaysMaxAge <= 0 || c.Interval <= 0 {
		errs = append(errs, errors.New("retention: poison replays max age and interval must be positive"))
	}
	if c.BatchSize < 1 || c.BatchSize > 100_000 {
		errs = append(errs, fmt.Errorf("retention: batch size %d is outside 1..100000", c.BatchSize))
	}
	return errors.Join(errs...)
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Pruner deletes the rows of one table whose time column is older than a
// cutoff, in batches. Column should be indexed, so that each batch is a short
// range scan.
type Pruner struct {
	DB *sql.DB
	// Table and Column name the table and its time column (plain identifiers).
	Table, Column string
	// BatchSize is the most rows one DELETE removes (>= 1).
	BatchSize int
}

// Batch deletes at most BatchSize rows older than cutoff, oldest first, in one
// statement (its own transaction), and returns how many it deleted.
func (p Pruner) Batch(ctx context.Context, cutoff time.Time) (int64, error) {
	if !identRe.MatchString(p.Table) || !identRe.MatchString(p.Column) || p.BatchSize < 1 {
		return 0, fmt.Errorf("prune: bad table %q, column %q or batch size %d", p.Table, p.Column, p.BatchSize)
	}
	res, err := p.DB.ExecContext(ctx, fmt.Sprintf("DELETE FROM `%s` WHERE `%s` < ? ORDER BY `%s` LIMIT ?",
		p.Table, p.Column, p.Column), cutoff, p.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("prune %s: %w", p.Table, err)
	}
	return res.RowsAffected()
}

// Prune deletes every row older than cutoff, batch after batch, until a batch
// deletes fewer than BatchSize rows or ctx ends. It returns how many rows it
// deleted in how many batches; on error, what it deleted before stays deleted.
func (p Pruner) Prune(ctx context.Context, cutoff time.Time) (deleted int64, batches int, err error) {
	for ctx.Err() == nil {
		n, err := p.Batch(ctx, cutoff)
		if err != nil {
			return deleted, batches, err
		}
		deleted += n
		batches++
		if n < int64(p.BatchSize) {
			return deleted, batches, nil
		}
	}
	return deleted, batches, ctx.Err()
}

// Retain registers on jobs a job that deletes, every c.Interval, the rows of
// table whose column is older than maxAge, in batches of c.BatchSize, and logs
// how many it deleted. A failing run is logged by j and tried again at the
// next interval; what it deleted stays deleted.
func (c Config) Retain(j *jobs.Jobs, db *sql.DB, table, column string, maxAge time.Duration) {
	c = c.Defaults()
	p := Pruner{DB: db, Table: table, Column: column, BatchSize: c.BatchSize}
	j.Every("retention-"+table, c.Interval, func(ctx context.Context) error {
		start := time.Now()
		deleted, batches, err := p.Prune(ctx, start.Add(-maxAge).UTC())
		if deleted > 0 || err != nil {
			j.Logger().Info("pruned old rows", "table", table, "max_age", maxAge.String(), "deleted", deleted,
				"batches", batches, "took", time.Since(start).String())
		}
		return err
	})
}
