package servicedb

import (
	"io/fs"

	"github.com/onceflow/onceflow/pkg/audit"
	"github.com/onceflow/onceflow/pkg/consumer/delayed"
	"github.com/onceflow/onceflow/pkg/consumer/parkkey"
	"github.com/onceflow/onceflow/pkg/inbox"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/outbox/parking"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// Migrations are the migration sets of a service's database, in order: the
// patterns' tables, then the service's own migrations (*.sql under a
// "migrations" directory of service, tracked in goose_db_version; nil for
// none). Give them to sqldb.OpenAndMigrate.
func Migrations(service fs.FS) []sqldb.Migrations {
	return []sqldb.Migrations{
		outbox.Migrations,
		parking.Migrations,
		inbox.Migrations,
		delayed.Migrations,
		parkkey.Migrations,
		poison.Migrations,
		audit.Migrations,
		{Table: "goose_db_version", FS: service, Dir: "migrations"},
	}
}
