// Package sqlqueue adapts watermill-sql v4's MySQL queue schema (one row per
// message, deleted once acknowledged) to two needs of a table polled as a
// queue: polling at READ COMMITTED (ReadCommittedSchema), and deleting only
// the rows that were acknowledged (DeleteAckedOnly). The outbox and the
// consumers' delayed path both poll such a table.
//
// Guarantees: a polling transaction locks only the rows it returns, so
// inserts into the table never wait for a poller that holds its batch; a
// batch cut short (an outage past the ack deadline, a shutdown) deletes only
// the rows before the first one not acknowledged. Needs: watermill-sql v4.
// Fails: never by itself; the subscriber reports the database's errors.
package sqlqueue
