//go:build faults

package outbox

import (
	"embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// The stock relay: what a Watermill user starts from. Outbox.Publish writes
// with watermill-sql's DefaultMySQLSchema to the forwarder's default SQL topic,
// and the forwarder is Watermill's with its default configuration over a
// subscriber with DefaultMySQLOffsetsAdapter (one watermark per consumer
// group, SERIALIZABLE polling, 1 s poll interval). Nothing of onceflow's
// relay is used: no commit wake, no batch produce, no parking, no breaker.
// Kept only in the fault build (Faults.StockRelay): it loses a row that
// commits below the watermark (ADR 3).

// StockTopic is the stock relay's SQL topic: the forwarder's default.
const StockTopic = "forwarder_topic"

//go:embed stockmigrations/*.sql
var stockMigrations embed.FS

// StockMigrations create the stock relay's tables with the adapters' own
// statements (the service user may not create tables).
var StockMigrations = sqldb.Migrations{Table: "goose_outbox_stock_version", FS: stockMigrations, Dir: "stockmigrations"}

// StockAppSQL is the service user's privileges on the stock relay's tables,
// in the form of deploy/dbusers' -app.sql files, for the database schema.
func StockAppSQL(schema string) string {
	return strings.ReplaceAll("GRANT SELECT, INSERT ON `watermill_forwarder_topic` TO 'S_app'@'%';\n"+
		"GRANT SELECT, INSERT, UPDATE ON `watermill_offsets_forwarder_topic` TO 'S_app'@'%';\n"+
		"GRANT SELECT ON `goose_outbox_stock_version` TO 'S_app'@'%';\n", "'S_app'", "'"+schema+"_app'")
}

// newStockForwarder is the stock relay of c (DB, Publisher, OnForwarded,
// Logger) polling every poll; every other setting is Watermill's default.
func newStockForwarder(c Config, poll time.Duration) (*Forwarder, error) {
	sub, err := wsql.NewSubscriber(wsql.BeginnerFromStdSQL(c.DB), wsql.SubscriberConfig{
		SchemaAdapter:  wsql.DefaultMySQLSchema{},
		OffsetsAdapter: wsql.DefaultMySQLOffsetsAdapter{},
		PollInterval:   poll,
	}, c.Logger)
	if err != nil {
		return nil, fmt.Errorf("stock outbox subscriber: %w", err)
	}
	out := c.Publisher
	if c.OnForwarded != nil {
		out = countingPublisher{Publisher: out, onForwarded: c.OnForwarded}
	}
	fwd, err := forwarder.NewForwarder(sub, out, c.Logger, forwarder.Config{})
	if err != nil {
		return nil, fmt.Errorf("stock forwarder: %w", err)
	}
	return &Forwarder{Forwarder: fwd, abandon: func() {}}, nil
}

// lateOffsets is a schema whose inserts give every every-th message of
// eventType an offset below any the table hands out (Faults.LateOffsetEvery).
type lateOffsets struct {
	wsql.SchemaAdapter
	every     int
	eventType string
	logger    *slog.Logger

	mu   sync.Mutex
	seen int
}

// InsertQuery implements wsql.SchemaAdapter: the inner schema's insert, with
// an explicit offset column (NULL: the next auto-increment value).
func (s *lateOffsets) InsertQuery(params wsql.InsertQueryParams) (wsql.Query, error) {
	table := s.SchemaAdapter.(interface{ MessagesTable(string) string }).MessagesTable(params.Topic)
	var args []any
	late := 0
	for _, m := range params.Msgs {
		var offset any
		if eventType(m) == s.eventType && s.next() {
			// Negative and rising: below every offset handed out, in write order.
			offset = time.Now().UnixMicro() - 1<<62
			late++
		}
		metadata, err := json.Marshal(m.Metadata)
		if err != nil {
			return wsql.Query{}, err
		}
		args = append(args, offset, m.UUID, []byte(m.Payload), metadata)
	}
	if late > 0 {
		s.logger.Warn("FAULT INJECTION: outbox rows written below every offset the table hands out", "rows", late)
	}
	marks := strings.TrimSuffix(strings.Repeat("(?,?,?,?),", len(params.Msgs)), ",")
	return wsql.Query{Query: "INSERT INTO " + table + " (`offset`, uuid, payload, metadata) VALUES " + marks, Args: args}, nil
}

// eventType is the event type of the message in the forwarder envelope m.
func eventType(m *message.Message) string {
	var envelope struct {
		Metadata map[string]string `json:"metadata"`
	}
	_ = json.Unmarshal(m.Payload, &envelope) // no type: never late
	return envelope.Metadata[kafka.MetadataEventType]
}

// next counts one more event of the type and says whether it is to be late.
func (s *lateOffsets) next() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen++
	return s.seen%s.every == 0
}
