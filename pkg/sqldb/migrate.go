package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
)

// Migrations is one set of goose migrations (*.sql files) with its own goose
// version table: each pattern package that owns tables exports one, and a
// service adds its own.
type Migrations struct {
	// Table is the goose version table of this set, e.g.
	// "goose_outbox_version". Required, and unique per set.
	Table string
	// FS holds the migration files, in Dir ("" or "." for its root).
	FS  fs.FS
	Dir string
}

// Migrate brings db up to date with each set, in order. Replicas starting
// together take turns on a MariaDB named lock per set, so each migration runs
// once. A set with a nil FS is skipped.
func Migrate(ctx context.Context, db *sql.DB, logger *slog.Logger, sets ...Migrations) error {
	for _, s := range sets {
		if s.FS == nil {
			continue
		}
		fsys := s.FS
		if s.Dir != "" && s.Dir != "." {
			sub, err := fs.Sub(s.FS, s.Dir)
			if err != nil {
				return fmt.Errorf("migrations (%s): %w", s.Table, err)
			}
			fsys = sub
		}
		p, err := goose.NewProvider(goose.DialectMySQL, db, fsys,
			goose.WithTableName(s.Table),
			goose.WithSessionLocker(namedLock{name: "onceflow_migrate_" + s.Table}),
			goose.WithDisableGlobalRegistry(true),
		)
		if err != nil {
			return fmt.Errorf("migrations (%s): %w", s.Table, err)
		}
		results, err := p.Up(ctx)
		if err != nil {
			return fmt.Errorf("migrating (%s): %w", s.Table, err)
		}
		for _, r := range results {
			logger.Info("migration applied", "source", r.Source.Path, "table", s.Table, "duration", r.Duration)
		}
	}
	return nil
}

// OpenAndMigrate opens the database of c (Open), waiting up to
// c.StartupTimeout for it to answer, and brings it up to date with Migrate.
// With c.MigrateDSN set, the migrations run on a pool of their own as that
// (migration) user, closed before the service's pool on c.DSN is opened: the
// service's user needs no DDL. It fails, closing the pools, on an
// invalid config, an unreachable database or a failed migration (a user
// without the privilege fails with MariaDB's "command denied" error).
func OpenAndMigrate(ctx context.Context, c Config, logger *slog.Logger, sets ...Migrations) (*sql.DB, error) {
	c = c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.StartupTimeout)
	defer cancel()
	if c.MigrateDSN != "" {
		// goose holds one connection for its named lock and migrates on another.
		mdb, err := Open(ctx, c.MigrateDSN, 2)
		if err != nil {
			return nil, fmt.Errorf("migration user: %w", err)
		}
		err = Migrate(ctx, mdb, logger, sets...)
		mdb.Close()
		if err != nil {
			return nil, fmt.Errorf("as the migration user: %w", err)
		}
	}
	db, err := Open(ctx, c.DSN, c.MaxOpenConns)
	if err != nil {
		return nil, err
	}
	if c.MigrateDSN == "" {
		if err := Migrate(ctx, db, logger, sets...); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// namedLock is a goose session locker on MariaDB's GET_LOCK.
type namedLock struct{ name string }

func (l namedLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	var ok sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 60)", l.name).Scan(&ok); err != nil {
		return err
	}
	if ok.Int64 != 1 {
		return fmt.Errorf("could not take migration lock %s within 60 s", l.name)
	}
	return nil
}

func (l namedLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "DO RELEASE_LOCK(?)", l.name)
	return err
}

// CountUpTo counts the rows of table (whose primary key is the integer column
// key) reading at most limit+1 index entries, and beyond that estimates from
// the key's range (MAX-MIN+1, an upper bound: rolled-back inserts and deleted
// rows leave gaps). A sampler can run it every second under any backlog.
func CountUpTo(ctx context.Context, db *sql.DB, table, key string, limit int) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, fmt.Sprintf(
		"SELECT COUNT(*) FROM (SELECT 1 FROM `%s` ORDER BY `%s` LIMIT %d) t", table, key, limit+1)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting %s: %w", table, err)
	}
	if n <= int64(limit) {
		return n, nil
	}
	err = db.QueryRowContext(ctx, fmt.Sprintf(
		"SELECT COALESCE(MAX(`%[2]s`) - MIN(`%[2]s`) + 1, 0) FROM `%[1]s`", table, key)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("estimating %s: %w", table, err)
	}
	return n, nil
}
