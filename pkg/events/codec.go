package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// Metadata keys set on every event message, next to Watermill's "correlation_id".
const (
	// MetadataType repeats the event type outside the payload, for logs and tools.
	// Its value is messaging.MetadataEventType's (a test checks it).
	MetadataType = "event_type"
	// MetadataKey holds the Kafka message key: the order id. Its value is
	// messaging.MetadataKey's, which the Kafka publisher turns into the key (a
	// test checks it).
	MetadataKey = "partition_key"
)

// Errors returned by Decode. Each means that redelivering the same bytes can
// never succeed, so a consumer sends such a message to its poison queue at once.
var (
	// ErrMalformed: the payload is not a JSON envelope of this contract (bad JSON,
	// wrong types, unknown fields, trailing data).
	ErrMalformed = errors.New("malformed event")
	// ErrUnknownType: the envelope's type is not one this package knows.
	ErrUnknownType = errors.New("unknown event type")
	// ErrUnsupportedVersion: the type is known but not in this schema version.
	ErrUnsupportedVersion = errors.New("unsupported event schema version")
	// ErrInvalid: the event decoded but breaks the contract (e.g. negative amount).
	ErrInvalid = errors.New("invalid event")
)

// DecodeError is the error Decode and Validate return. It wraps one of the
// sentinel errors above and says that the message is permanently bad.
type DecodeError struct {
	Kind   error
	Detail string
}

// Error implements error.
func (e *DecodeError) Error() string { return e.Kind.Error() + ": " + e.Detail }

// Unwrap lets errors.Is match the kind (ErrMalformed, ErrUnknownType, ...).
func (e *DecodeError) Unwrap() error { return e.Kind }

// Permanent reports true: retrying cannot fix a message that does not decode.
// The messaging package recognises errors with this method.
func (e *DecodeError) Permanent() bool { return true }

// ReasonCode returns "invalid_event", the public reason code a consumer records
// when it poisons a message that is not a valid event of the contract (the
// poison queue and the order timeline show it). The messaging package
// recognises errors with this method (messaging.ReasonCode).
func (e *DecodeError) ReasonCode() string { return "invalid_event" }

func invalid(format string, args ...any) error {
	return &DecodeError{Kind: ErrInvalid, Detail: fmt.Sprintf(format, args...)}
}

// payloadSpec says which payload type and schema version a Type has today.
type payloadSpec struct {
	version int
	decode  func(data []byte) (Payload, error)
}

func spec[P Payload]() payloadSpec {
	return payloadSpec{version: 1, decode: func(data []byte) (Payload, error) {
		var p P
		if err := strictUnmarshal(data, &p); err != nil {
			return nil, err
		}
		return p, nil
	}}
}

var payloads = map[Type]payloadSpec{
	TypeOrderPlaced:      spec[OrderPlaced](),
	TypeOrderCancelled:   spec[OrderCancelled](),
	TypePaymentCompleted: spec[PaymentCompleted](),
	TypePaymentFailed:    spec[PaymentFailed](),
	TypePaymentRefunded:  spec[PaymentRefunded](),
	// Added after the first release: a consumer built before it poisons these
	// (ErrUnknownType), so the order service is deployed first (ADR 0027).
	TypePaymentRefundFailed: spec[PaymentRefundFailed](),
}

// envelope is the JSON shape of every event payload on the wire.
type envelope struct {
	Type          Type            `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	OrderID       string          `json:"order_id"`
	OrderVersion  int             `json:"order_version"`
	OccurredAt    time.Time       `json:"occurred_at"`
	Data          json.RawMessage `json:"data"`
}

// Encode turns a valid event into a Watermill message: UUID = e.ID, the JSON
// envelope as payload, and metadata with the type, the Kafka key (order id) and the
// correlation id. It fails if the event does not pass Validate.
func Encode(e Event) (*message.Message, error) {
	if e.SchemaVersion == 0 {
		e.SchemaVersion = payloads[e.Type()].version
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	data, err := json.Marshal(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("encoding %s payload: %w", e.Type(), err)
	}
	body, err := json.Marshal(envelope{
		Type:          e.Type(),
		SchemaVersion: e.SchemaVersion,
		OrderID:       e.OrderID,
		OrderVersion:  e.OrderVersion,
		OccurredAt:    e.OccurredAt.UTC(),
		Data:          data,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding %s envelope: %w", e.Type(), err)
	}
	msg := message.NewMessage(e.ID, body)
	msg.Metadata.Set(MetadataType, string(e.Type()))
	msg.Metadata.Set(MetadataKey, e.OrderID)
	if e.CorrelationID != "" {
		middleware.SetCorrelationID(e.CorrelationID, msg)
	}
	return msg, nil
}

// Decode turns a message into an Event. It is strict: unknown fields, wrong types,
// trailing bytes, unknown types or versions and contract violations are all
// errors, of type *DecodeError, matching ErrMalformed, ErrUnknownType,
// ErrUnsupportedVersion or ErrInvalid. A message without a UUID is invalid, since
// nothing could deduplicate it.
func Decode(msg *message.Message) (Event, error) {
	var env envelope
	if err := strictUnmarshal(msg.Payload, &env); err != nil {
		return Event{}, err
	}
	ps, ok := payloads[env.Type]
	if !ok {
		return Event{}, &DecodeError{Kind: ErrUnknownType, Detail: fmt.Sprintf("type %q", env.Type)}
	}
	if env.SchemaVersion != ps.version {
		return Event{}, &DecodeError{Kind: ErrUnsupportedVersion,
			Detail: fmt.Sprintf("%s schema_version %d (supported: %d)", env.Type, env.SchemaVersion, ps.version)}
	}
	if len(env.Data) == 0 {
		return Event{}, &DecodeError{Kind: ErrMalformed, Detail: "data is missing"}
	}
	p, err := ps.decode(env.Data)
	if err != nil {
		return Event{}, err
	}
	e := Event{
		ID:            msg.UUID,
		SchemaVersion: env.SchemaVersion,
		OrderID:       env.OrderID,
		OrderVersion:  env.OrderVersion,
		OccurredAt:    env.OccurredAt,
		CorrelationID: middleware.MessageCorrelationID(msg),
		Payload:       p,
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// strictUnmarshal decodes exactly one JSON value into v, rejecting unknown fields
// and trailing data.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &DecodeError{Kind: ErrMalformed, Detail: err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &DecodeError{Kind: ErrMalformed, Detail: "trailing data after the JSON value"}
	}
	return nil
}

// EncodeAll encodes each event (see Encode); it stops at the first error.
func EncodeAll(evts []Event) ([]*message.Message, error) {
	msgs := make([]*message.Message, len(evts))
	for i, e := range evts {
		m, err := Encode(e)
		if err != nil {
			return nil, fmt.Errorf("event %d (%s): %w", i, e.Type(), err)
		}
		msgs[i] = m
	}
	return msgs, nil
}
