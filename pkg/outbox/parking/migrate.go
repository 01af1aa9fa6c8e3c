package parking

import (
	"embed"

	"github.com/onceflow/onceflow/pkg/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations create the table of parked rows, tracked in
// goose_outbox_parking_version.
var Migrations = sqldb.Migrations{Table: "goose_outbox_parking_version", FS: migrations, Dir: "migrations"}
