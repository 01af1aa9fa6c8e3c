package inbox

import (
	"embed"

	"github.com/onceflow/onceflow/pkg/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations create the inbox table, tracked in goose_inbox_version.
var Migrations = sqldb.Migrations{Table: "goose_inbox_version", FS: migrations, Dir: "migrations"}
