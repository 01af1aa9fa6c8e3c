package sqlqueue

import (
	"database/sql"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
)

// ReadCommittedSchema is watermill-sql v4's MySQLQueueSchema polled at READ
// COMMITTED instead of the adapter's SERIALIZABLE (ADR 3). SERIALIZABLE
// protects the offsets watermark of the default schema, which the queue schema
// does not have; under it the polling SELECT ... FOR UPDATE takes next-key
// locks up to the end of the table, so while the poller holds its batch (Kafka
// down) every INSERT into the table waits (we measured seconds).
type ReadCommittedSchema struct {
	wsql.MySQLQueueSchema
	// SessionLevel says the polling pool's sessions are READ COMMITTED already
	// (sqldb.SessionReadCommitted): polls then begin at the session's level,
	// without a SET round trip each.
	SessionLevel bool
}

// SubscribeIsolationLevel implements wsql.SchemaAdapter.
func (s ReadCommittedSchema) SubscribeIsolationLevel() sql.IsolationLevel {
	if s.SessionLevel {
		return sql.LevelDefault
	}
	return sql.LevelReadCommitted
}

// DeleteAckedOnly is MySQLQueueOffsetsAdapter{DeleteOnAck: true} that deletes
// only the rows that were acknowledged. watermill-sql v4.1.2's subscriber
// passes every row of the batch to AckMessageQuery even when it stopped early
// (the publisher down past the ack deadline, or a shutdown); the stock adapter
// then deletes rows that were never handled. The subscriber handles rows in
// offset order and stops at the first one not acknowledged, so the
// acknowledged rows are exactly those up to LastRow.
type DeleteAckedOnly struct{ wsql.MySQLQueueOffsetsAdapter }

// AckMessageQuery implements wsql.OffsetsAdapter.
func (a DeleteAckedOnly) AckMessageQuery(params wsql.AckMessageQueryParams) (wsql.Query, error) {
	acked := make([]wsql.Row, 0, len(params.Rows))
	for _, r := range params.Rows {
		if r.Offset <= params.LastRow.Offset {
			acked = append(acked, r)
		}
	}
	params.Rows = acked
	return a.MySQLQueueOffsetsAdapter.AckMessageQuery(params)
}
