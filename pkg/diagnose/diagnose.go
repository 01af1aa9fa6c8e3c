package diagnose

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/consumer/delayed"
	"github.com/onceflow/onceflow/pkg/consumer/stop"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
)

// The codes of the holds this package detects.
const (
	// CodeConsumerStopped: a consumer of the service gave up on a message with
	// the stop strategy and holds every message until the service restarts.
	CodeConsumerStopped = "consumer_stopped"
	// CodeConsumerPaused: a consumer with the pause strategy holds every
	// message until its dependency (its database) answers again.
	CodeConsumerPaused = "consumer_paused"
	// CodeRetrying: a consumer is retrying one of the key's messages in place.
	CodeRetrying = "retrying"
	// CodeRequeued: the requeue strategy stored one of the key's messages on
	// its consumer's delayed path, due again later.
	CodeRequeued = "requeued"
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
	// Consumers is what the service's consumers know in memory (a
	// *consumer.Consumers); nil: the service has none.
	Consumers Consumers
}

// Consumers is the in-memory state of a service's consumers
// (*consumer.Consumers implements it).
type Consumers interface {
	// Health is nil, or the consumers stopped by the stop strategy
	// (*stop.StoppedError) among other failures.
	Health() error
	// Paused lists the consumers the pause strategy paused.
	Paused() []consumer.Paused
	// Retrying lists key's deliveries being retried in place.
	Retrying(key string) []consumer.Retrying
}

// Holds returns what holds key's messages in the service, in the order a
// message meets them: a stopped or paused consumer, a delivery being retried,
// a message on a delayed path and a parked key (on the way in), then a parked
// outbox row and the outbox backlog (on the way out). Empty: nothing holds it
// here. What the service knows from memory (stopped, paused, retrying) is
// returned even when the database fails, since an outage is what pauses a
// consumer; the error is returned only when nothing else is known.
func (p Prober) Holds(ctx context.Context, key string) ([]Hold, error) {
	holds := p.inMemory(key)
	for _, probe := range []func(context.Context, string) (*Hold, error){p.requeued, p.parkedKey, p.parkedRow, p.outboxRow} {
		h, err := probe(ctx, key)
		if err != nil {
			if len(holds) > 0 {
				return holds, nil
			}
			return nil, err
		}
		if h != nil {
			holds = append(holds, *h)
		}
	}
	return holds, nil
}

// inMemory returns the holds the consumers know of: a stopped consumer, the
// paused ones, and the key's deliveries being retried.
func (p Prober) inMemory(key string) []Hold {
	if p.Consumers == nil {
		return nil
	}
	var holds []Hold
	var stopped *stop.StoppedError
	if errors.As(p.Consumers.Health(), &stopped) {
		holds = append(holds, Hold{Code: CodeConsumerStopped, Service: p.Service, Since: stopped.Since.UTC(),
			Detail: fmt.Sprintf("consumer %s stopped on message %s (key %s, reason %s); it holds every message",
				stopped.Consumer, stopped.MessageID, stopped.Key, stopped.ReasonCode),
			Remedy: fmt.Sprintf("fix what made message %s fail, then restart the %s service", stopped.MessageID, p.Service)})
	}
	for _, c := range p.Consumers.Paused() {
		holds = append(holds, Hold{Code: CodeConsumerPaused, Service: p.Service, Since: c.Since.UTC(),
			Detail: fmt.Sprintf("consumer %s is paused: its database does not answer, and it holds every message (%d wait at its gate)", c.Consumer, c.Held),
			Remedy: fmt.Sprintf("bring the %s service's database back; the consumer probes it and resumes by itself (watch onceflow_consumer_lag_messages)", p.Service)})
	}
	for _, r := range p.Consumers.Retrying(key) {
		next := "its retries are spent and the consumer's failure strategy takes it now"
		if !r.NextTry.IsZero() {
			next = "the next try is at about " + r.NextTry.UTC().Format(time.RFC3339Nano)
		}
		holds = append(holds, Hold{Code: CodeRetrying, Service: p.Service, Since: r.Since.UTC(),
			Detail: fmt.Sprintf("consumer %s is retrying message %s in place: %d attempts failed (reason %s); %s",
				r.Consumer, r.MessageID, r.Attempts, r.ReasonCode, next),
			Remedy: fmt.Sprintf("wait for the next try, or fix what fails (reason %s): when the retries are spent, the consumer's failure strategy poisons, requeues or parks it", r.ReasonCode)})
	}
	return holds
}

// requeued reads the consumers' delayed path (consumer_requeue) for the
// key's first message due, among its oldest OutboxScanLimit rows.
func (p Prober) requeued(ctx context.Context, key string) (*Hold, error) {
	var handler, requeues string
	var due, since time.Time
	err := p.DB.QueryRowContext(ctx, "SELECT handler, delayed_until, created_at, COALESCE(JSON_VALUE(metadata, ?), '') FROM (SELECT `offset`, handler, delayed_until, created_at, metadata FROM consumer_requeue "+
		"WHERE consumer_group = ? AND acked = FALSE ORDER BY `offset` LIMIT ?) oldest WHERE JSON_VALUE(metadata, ?) = ? ORDER BY delayed_until LIMIT 1",
		"$."+delayed.MetadataRequeues, p.Group, OutboxScanLimit, "$."+kafka.MetadataKey, key).Scan(&handler, &due, &since, &requeues)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("diagnose: delayed path: %w", err)
	}
	if requeues == "" {
		requeues = "a replay"
	} else {
		requeues = "requeue " + requeues
	}
	return &Hold{Code: CodeRequeued, Service: p.Service, Since: since.UTC(),
		Detail: fmt.Sprintf("consumer %s stored one of its messages on its delayed path (%s); it is due again at %s",
			handler, requeues, due.UTC().Format(time.RFC3339)),
		Remedy: fmt.Sprintf("wait: the %s service delivers it again at %s, through the whole consumer stack; fix what fails before its requeues run out (then it is poisoned)",
			p.Service, due.UTC().Format(time.RFC3339))}, nil
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
