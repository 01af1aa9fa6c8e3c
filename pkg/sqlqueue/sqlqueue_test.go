package sqlqueue_test

import (
	"database/sql"
	"reflect"
	"testing"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"

	"github.com/onceflow/onceflow/pkg/sqlqueue"
)

// TestDeleteAckedOnly: of a batch cut short after its third row, only the
// first three rows are deleted; the stock adapter (negative control) deletes
// all five.
func TestDeleteAckedOnly(t *testing.T) {
	t.Parallel()
	rows := []wsql.Row{{Offset: 11}, {Offset: 12}, {Offset: 13}, {Offset: 14}, {Offset: 15}}
	params := wsql.AckMessageQueryParams{Topic: "outbox", LastRow: rows[2], Rows: rows}
	stock := wsql.MySQLQueueOffsetsAdapter{DeleteOnAck: true}
	tests := []struct {
		name    string
		adapter wsql.OffsetsAdapter
		want    []any
	}{
		{"DeleteAckedOnly", sqlqueue.DeleteAckedOnly{MySQLQueueOffsetsAdapter: stock}, []any{int64(11), int64(12), int64(13)}},
		{"stock adapter (negative control)", stock, []any{int64(11), int64(12), int64(13), int64(14), int64(15)}},
	}
	for _, tt := range tests {
		q, err := tt.adapter.AckMessageQuery(params)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(q.Args, tt.want) {
			t.Errorf("%s deletes offsets %v, want %v", tt.name, q.Args, tt.want)
		}
	}
}

// TestReadCommittedSchema: polls run at READ COMMITTED, asked for explicitly
// unless the pool's sessions already are.
func TestReadCommittedSchema(t *testing.T) {
	t.Parallel()
	if got := (sqlqueue.ReadCommittedSchema{}).SubscribeIsolationLevel(); got != sql.LevelReadCommitted {
		t.Errorf("level %v, want READ COMMITTED", got)
	}
	if got := (sqlqueue.ReadCommittedSchema{SessionLevel: true}).SubscribeIsolationLevel(); got != sql.LevelDefault {
		t.Errorf("level %v on a READ COMMITTED pool, want the session's default", got)
	}
	if got := (wsql.MySQLQueueSchema{}).SubscribeIsolationLevel(); got == sql.LevelReadCommitted {
		t.Error("the stock schema polls at READ COMMITTED already: the adapter fixes nothing")
	}
}
