// Package sqldb is the MariaDB adapter every other part shares: a connection
// pool whose sessions are READ COMMITTED (Open), transactions that code deeper
// down joins through the context (InTx, ContextWithTx, TxFromContext) and that
// run registered functions after they commit (OnCommit), and goose migrations,
// one version table per set (Migrate, OpenAndMigrate).
//
// Guarantees:
//   - Every session of a pool from Open is READ COMMITTED, set once per
//     connection (ADR 0043); SessionReadCommitted tells such a pool from any
//     other, so InTx asks a plain pool for the level explicitly instead.
//   - InTx commits if its function returns nil and rolls back otherwise (a
//     panic included); functions registered with OnCommit run only after a
//     commit.
//   - Migrate applies each set under a MariaDB named lock, so replicas
//     starting together migrate once.
//   - Neither errors nor logs contain a DSN's password (RedactDSN).
//
// Needs: the go-sql-driver/mysql driver and goose.
//
// Fails: Open when the server does not answer before ctx ends; Migrate when a
// migration fails (a user without DDL gets MariaDB's "command denied"); InTx
// with the function's error, or the begin, commit or rollback error.
package sqldb
