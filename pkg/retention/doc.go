// Package retention deletes old rows of the tables the patterns fill (the
// inbox, the poison replay records) and of any other table with a time
// column, in small batches on a periodic job (ADR 0025), so that pruning never
// holds locks for long.
//
// Guarantees: each DELETE is its own short transaction of at most BatchSize
// rows, oldest first; what a run deleted stays deleted if a later batch
// fails. Needs: a MariaDB table whose time column is indexed, and package
// jobs. Fails: a failing run is logged and tried again at the next interval.
package retention
