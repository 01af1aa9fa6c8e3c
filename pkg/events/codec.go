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
	// Its value is kafka.MetadataEventType's (a test checks it).
	MetadataType = "event_type"
	// MetadataKey holds the Kafka message key: the order id. Its value is
	// kafka.MetadataKey's, which the Kafka publisher turns into the key (a
	// test checks it).
	MetadataKey = "partition_key"
)

// MaxPayloadBytes bounds the payload Decode parses: 256 KiB, the bound the
// outbox puts on every event it writes (outbox.MaxMessageBytes, payload and
// metadata together; a test keeps the two equal). No producer of this contract
// writes more, so a larger payload is refused as malformed before it is parsed:
// a consumer's work and memory per message stay bounded whatever a message
// claims.
const MaxPayloadBytes = 256 << 10

// Errors returned by Decode. Each means that redelivering the same bytes can
// never succeed, so a consumer sends such a message to its poison queue at once.
var (
	// ErrMalformed: the payload is not a JSON envelope of this contract (bad JSON,
	// wrong types, unknown fields, trailing data, over MaxPayloadBytes).
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
// The consumer stack recognises errors with this method (failure.IsPermanent).
func (e *DecodeError) Permanent() bool { return true }

// ReasonCode returns the public reason code a consumer records when it poisons
// a message that is not a valid event of the contract (the poison queue and the
// order timeline show it): ReasonUnsupportedVersion for an event type this
// build knows in other schema versions only, "invalid_event" for everything
// else. The consumer stack recognises errors with this method
// (failure.ReasonCode).
func (e *DecodeError) ReasonCode() string {
	if errors.Is(e.Kind, ErrUnsupportedVersion) {
		return ReasonUnsupportedVersion
	}
	return "invalid_event"
}

func invalid(format string, args ...any) error {
	return &DecodeError{Kind: ErrInvalid, Detail: fmt.Sprintf(format, args...)}
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
// correlation id. The data is written in schema version e.SchemaVersion, or in
// the type's DefaultWriteVersion if it is 0 (the in-memory payload, which has the
// newest shape, is converted down to an older version). It fails with ErrInvalid
// if the event does not pass Validate or its type is unknown, and with
// ErrUnsupportedVersion if this build cannot write e.SchemaVersion.
func Encode(e Event) (*message.Message, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	sc, ok := schemas[e.Type()]
	if !ok {
		return nil, invalid("event type %q is not one this build knows", e.Type())
	}
	if e.SchemaVersion == 0 {
		e.SchemaVersion = sc.write
	}
	if e.SchemaVersion < 1 || e.SchemaVersion > sc.newest() {
		return nil, &DecodeError{Kind: ErrUnsupportedVersion,
			Detail: fmt.Sprintf("cannot write %s schema_version %d (supported: 1..%d)", e.Type(), e.SchemaVersion, sc.newest())}
	}
	data, err := json.Marshal(e.Payload)
	if err == nil {
		data, err = sc.downcast(e.SchemaVersion, data)
	}
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

// Decode turns a message into an Event. It accepts every schema version of the
// type from 1 to NewestVersion and upcasts older ones, so the payload always has
// the newest shape; Event.SchemaVersion says which version was written. It is
// strict: a payload over MaxPayloadBytes, unknown fields, wrong types,
// trailing bytes, unknown types or versions and contract violations are all errors, of type *DecodeError, matching
// ErrMalformed, ErrUnknownType, ErrUnsupportedVersion or ErrInvalid. A message
// without a UUID is invalid, since nothing could deduplicate it.
func Decode(msg *message.Message) (Event, error) { return Decoder{}.Decode(msg) }

// Decode is the package's Decode, with the versions d accepts.
func (d Decoder) Decode(msg *message.Message) (Event, error) {
	if len(msg.Payload) > MaxPayloadBytes {
		return Event{}, &DecodeError{Kind: ErrMalformed,
			Detail: fmt.Sprintf("payload of %d bytes is over the contract's %d", len(msg.Payload), MaxPayloadBytes)}
	}
	var env envelope
	if err := strictUnmarshal(msg.Payload, &env); err != nil {
		return Event{}, err
	}
	sc, ok := schemas[env.Type]
	if !ok {
		return Event{}, &DecodeError{Kind: ErrUnknownType, Detail: fmt.Sprintf("type %q", env.Type)}
	}
	if env.SchemaVersion < 1 {
		return Event{}, &DecodeError{Kind: ErrMalformed, Detail: fmt.Sprintf("schema_version %d is not a version (missing?)", env.SchemaVersion)}
	}
	if newest, ok := d.supports(env.Type, sc, env.SchemaVersion); !ok {
		return Event{}, &DecodeError{Kind: ErrUnsupportedVersion,
			Detail: fmt.Sprintf("%s schema_version %d (supported: 1..%d)", env.Type, env.SchemaVersion, newest)}
	}
	if len(env.Data) == 0 {
		return Event{}, &DecodeError{Kind: ErrMalformed, Detail: "data is missing"}
	}
	data, err := sc.upcast(env.SchemaVersion, env.Data)
	if err != nil {
		return Event{}, err
	}
	p, err := sc.decode(data)
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
