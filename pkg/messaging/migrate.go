package messaging

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate brings a service database up to date: first this package's tables (the
// outbox and the inbox, tracked in goose_messaging_version), then the service's
// own migrations from serviceFS, if not nil (tracked in goose_db_version). Replicas starting
// together take turns on a MariaDB named lock, so each migration runs once.
func Migrate(ctx context.Context, db *sql.DB, serviceFS fs.FS, logger *slog.Logger) error {
	own, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	steps := []struct {
		table string
		fsys  fs.FS
	}{
		{"goose_messaging_version", own},
		{"goose_db_version", serviceFS},
	}
	for _, s := range steps {
		if s.fsys == nil {
			continue
		}
		p, err := goose.NewProvider(goose.DialectMySQL, db, s.fsys,
			goose.WithTableName(s.table),
			goose.WithSessionLocker(namedLock{name: "onceflow_migrate_" + s.table}),
			goose.WithDisableGlobalRegistry(true),
		)
		if err != nil {
			return fmt.Errorf("migrations (%s): %w", s.table, err)
		}
		results, err := p.Up(ctx)
		if err != nil {
			return fmt.Errorf("migrating (%s): %w", s.table, err)
		}
		for _, r := range results {
			logger.Info("migration applied", "source", r.Source.Path, "table", s.table, "duration", r.Duration)
		}
	}
	return nil
}

// OpenAndMigrate opens the database of c (OpenDB), waiting up to
// c.StartupTimeout for it to answer, and brings it up to date with Migrate:
// this package's tables, then the service's migrations from serviceMigrations
// (*.sql files under a "migrations" directory; nil for none). With
// c.MigrateDSN set, the migrations run on a pool of their own as that
// (migration) user, closed before the service's pool on c.DSN is opened: the
// service's user needs no DDL (ADR 0049). It fails, closing the pools, on an
// invalid config, an unreachable database or a failed migration (a user
// without the privilege fails with MariaDB's "command denied" error).
func OpenAndMigrate(ctx context.Context, c DBConfig, serviceMigrations fs.FS, logger *slog.Logger) (*sql.DB, error) {
	c = c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.StartupTimeout)
	defer cancel()
	var migrations fs.FS
	if serviceMigrations != nil {
		var err error
		if migrations, err = fs.Sub(serviceMigrations, "migrations"); err != nil {
			return nil, err
		}
	}
	if c.MigrateDSN != "" {
		// goose holds one connection for its named lock and migrates on another.
		mdb, err := OpenDB(ctx, c.MigrateDSN, 2)
		if err != nil {
			return nil, fmt.Errorf("migration user: %w", err)
		}
		err = Migrate(ctx, mdb, migrations, logger)
		mdb.Close()
		if err != nil {
			return nil, fmt.Errorf("as the migration user: %w", err)
		}
	}
	db, err := OpenDB(ctx, c.DSN, c.MaxOpenConns)
	if err != nil {
		return nil, err
	}
	if c.MigrateDSN == "" {
		if err := Migrate(ctx, db, migrations, logger); err != nil {
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
