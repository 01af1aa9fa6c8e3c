package diagnose

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/pkg/consumer/stop"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
)

// The codes of the holds this package detects.
const (
	// CodeConsumerStopped: a consumer of the service gave up on a message with
	// the stop strategy and holds every message until the service restarts.
	CodeConsumerStopped = "consumer_stopped"
	// CodeKeyParked: a park-key consumer parked the key behind a failed head.
	CodeKeyParked = "key_parked"
	// CodeOutboxParked: the key's outbox row waits behind a row Kafka refused
	// for good (or is that row).
	CodeOutboxParked = "outbox_parked"
	// CodeOutboxBacklog: the key's event is committed but still in the outbox
	// (Kafka down, the breaker open, or the relay behind).
	CodeOutboxBacklog = "outbox_backlog"
)

// OutboxScanLimit bounds the outbox rows (the oldest, by primary key) one
// probe reads looking for a key: a backlog larger than this is reported by
// the outbox gauges, and a key behind it is not named.
const OutboxScanLimit = 10000

// Hold is one thing that holds a key's messages in a service.
type Hold struct {
	// Code is one of the Code* constants.
	Code string `json:"code"`
	// Service is the service it was found in ("order", "payment").
	Service string `json:"service"`
	// Detail says what holds it, for people; never error text.
	Detail string `json:"detail"`
	// Remedy is the command and the admin endpoint that resolve it.
	Remedy string `json:"remedy"`
	// Since is when it began (zero if unknown).
	Since time.Time `json:"since,omitzero"`
}

// Prober finds the holds of one service.
type Prober struct {
	// Service names the service in holds and remedies: its command ("order
	// poison ...") and its admin endpoints.
	Service string
	DB      *sql.DB
	// Group is the service's consumer group (the park-key tables' key).
	Group string
	// Health is the consumers' health (consumer.Consumers.Health); nil: none.
	Health func() error
}

// Holds returns what holds key's messages in the service, in the order a
// message meets them: a stopped consumer and a parked key (on the way in),
// then a parked outbox row and the outbox backlog (on the way out). Empty:
// nothing holds it here.
func (p Prober) Holds(ctx context.Context, key string) ([]Hold, error) {
	var holds []Hold
	if p.Health != nil {
		var stopped *stop.StoppedError
		if errors.As(p.Health(), &stopped) {
			holds = append(holds, Hold{Code: CodeConsumerStopped, Service: p.Service, Since: stopped.Since.UTC(),
				Detail: fmt.Sprintf("consumer %s stopped on message %s (key %s, reason %s); it holds every message",
					stopped.Consumer, stopped.MessageID, stopped.Key, stopped.ReasonCode),
				Remedy: fmt.Sprintf("fix what made message %s fail, then restart the %s service", stopped.MessageID, p.Service)})
		}
	}
	for _, probe := range []func(context.Context, string) (*Hold, error){p.parkedKey, p.parkedRow, p.outboxRow} {
		h, err := probe(ctx, key)
		if err != nil {
			return nil, err
		}
		if h != nil {
			holds = append(holds, *h)
		}
	}
	return holds, nil
}

// parkedKey reads consumer_parked_keys by its primary key's prefix.
func (p Prober) parkedKey(ctx context.Context, key string) (*Hold, error) {
	var handler string
	var since time.Time
	var replay sql.NullTime
	err := p.DB.QueryRowContext(ctx, `SELECT handler, parked_at, replay_requested_at FROM consumer_parked_keys
		WHERE consumer_group = ? AND partition_key = ? LIMIT 1`, p.Group, key).Scan(&handler, &since, &replay)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("diagnose: parked key: %w", err)
	}
	detail := fmt.Sprintf("consumer %s parked key %s behind a message it gave up on", handler, key)
	if replay.Valid {
		detail += "; a replay is requested and the consumer releases it at its next poll"
	}
	return &Hold{Code: CodeKeyParked, Service: p.Service, Since: since.UTC(), Detail: detail,
		Remedy: fmt.Sprintf("fix the cause; %s poison keys dry-run %s shows what the release would change; then %s poison keys replay %s (POST /admin/poison/keys/%s/replay on the %s service)",
			p.Service, key, p.Service, key, key, p.Service)}, nil
}

// parkedRow reads the head of the key in outbox_parked by its key index.
func (p Prober) parkedRow(ctx context.Context, key string) (*Hold, error) {
	var id int64
	var reason string
	var since time.Time
	var released bool
	err := p.DB.QueryRowContext(ctx, `SELECT id, reason, parked_at, released_at IS NOT NULL FROM outbox_parked
		WHERE partition_key = ? ORDER BY id LIMIT 1`, key).Scan(&id, &reason, &since, &released)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("diagnose: parked outbox row: %w", err)
	}
	detail := fmt.Sprintf("its outbox rows are parked: Kafka refused row %d for good (%s)", id, reason)
	if released {
		detail += "; row " + fmt.Sprint(id) + " is replayed and waits for the forwarder"
	}
	return &Hold{Code: CodeOutboxParked, Service: p.Service, Since: since.UTC(), Detail: detail,
		Remedy: fmt.Sprintf("fix the cause, then %s poison parked replay %d (POST /admin/poison/parked/%d/replay on the %s service)",
			p.Service, id, id, p.Service)}, nil
}

// outboxRow looks for the key among the oldest OutboxScanLimit outbox rows.
func (p Prober) outboxRow(ctx context.Context, key string) (*Hold, error) {
	var offset int64
	var since time.Time
	var age int64
	// A row holds the forwarder's envelope: the event's metadata, its key
	// included, is in the payload (the row's own metadata is the envelope's).
	err := p.DB.QueryRowContext(ctx, "SELECT `offset`, created_at, TIMESTAMPDIFF(MICROSECOND, created_at, CURRENT_TIMESTAMP(6)) FROM (SELECT `offset`, created_at, payload FROM `"+
		outbox.Table+"` ORDER BY `offset` LIMIT ?) oldest WHERE JSON_VALUE(payload, ?) = ? ORDER BY `offset` LIMIT 1",
		OutboxScanLimit, "$.metadata."+kafka.MetadataKey, key).Scan(&offset, &since, &age)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("diagnose: outbox: %w", err)
	}
	return &Hold{Code: CodeOutboxBacklog, Service: p.Service, Since: since.UTC(),
		Detail: fmt.Sprintf("its event waits in the outbox (row %d, for %s): Kafka is down, the breaker is open or the relay is behind",
			offset, (time.Duration(age) * time.Microsecond).Round(time.Millisecond)),
		Remedy: fmt.Sprintf("make Kafka reachable from the %s service; the forwarder relays the row by itself (watch onceflow_outbox_pending_rows)", p.Service)}, nil
}

// OpenAPI is the OpenAPI 3.1 fragment with the schema DiagnosisHold (a Hold);
// a service with a diagnosis endpoint merges it into its document
// (apidoc.Build).
//
//go:embed openapi.yaml
var OpenAPI []byte
