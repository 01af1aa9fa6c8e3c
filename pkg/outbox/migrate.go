package outbox

import (
	"embed"

	"github.com/onceflow/onceflow/pkg/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations create the outbox table, tracked in goose_outbox_version.
var Migrations = sqldb.Migrations{Table: "goose_outbox_version", FS: migrations, Dir: "migrations"}
