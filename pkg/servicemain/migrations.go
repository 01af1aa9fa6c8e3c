package servicemain

import (
	"io/fs"

	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/outbox/parking"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// Migrations are the migration sets of a service's database, in order: the
// tables of every pattern the services use, each set with its own goose
// version table, then the service's own migrations (*.sql under a
// "migrations" directory of service, tracked in goose_db_version; nil for
// none). Give them to sqldb.OpenAndMigrate.
func Migrations(service fs.FS) []sqldb.Migrations {
	return []sqldb.Migrations{
		outbox.Migrations,
		parking.Migrations,
		messaging.Migrations,
		{Table: "goose_db_version", FS: service, Dir: "migrations"},
	}
}
