package messaging

import (
	"embed"
	"io/fs"

	"github.com/onceflow/onceflow/pkg/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are this package's tables (the outbox, the inbox, parking, the
// delayed path, parked keys, poison replays), tracked in
// goose_messaging_version.
var Migrations = sqldb.Migrations{Table: "goose_messaging_version", FS: migrations, Dir: "migrations"}

// ServiceMigrations are a service's own migrations (*.sql files under a
// "migrations" directory of fsys), tracked in goose_db_version.
func ServiceMigrations(fsys fs.FS) sqldb.Migrations {
	return sqldb.Migrations{Table: "goose_db_version", FS: fsys, Dir: "migrations"}
}
