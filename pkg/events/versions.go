package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ReasonUnsupportedVersion is the public reason code of an event whose type
// this build knows in another schema version only (a producer wrote a version
// this consumer was built before): the poison queue and the order timeline show
// it, and replaying the message after the consumer is upgraded completes it.
// Every other decode failure is "invalid_event".
const ReasonUnsupportedVersion = "unsupported_version"

// schema is what this build knows of one event type's schema versions: 1 to
// newest, where newest is the shape of the Go payload type.
type schema struct {
	// decode strictly decodes data of the newest version into the payload type.
	decode func(data []byte) (Payload, error)
	// steps[i] turns data of version i+1 into data of version i+2 (up) and back
	// (down); the newest version is len(steps)+1.
	steps []step
	// write is the version Encode writes when an event names none: the newest
	// version every deployed consumer decodes, so it moves only after the
	// consumers did (consumers first, then producers).
	write int
}

func (s schema) newest() int { return len(s.steps) + 1 }

// step converts one event type's data between two adjacent schema versions.
type step struct {
	up   func(data []byte) ([]byte, error)
	down func(data []byte) ([]byte, error)
}

// upcaster makes the step from version Old to New of the wire structs out of a
// pure function that maps one to the other (the upcaster) and its inverse, used
// by producers that still write Old. up decodes Old strictly: unknown fields and
// wrong types are ErrMalformed, as in any other version.
func upcaster[Old, New any](up func(Old) New, down func(New) Old) step {
	return step{
		up: func(data []byte) ([]byte, error) {
			var o Old
			if err := strictUnmarshal(data, &o); err != nil {
				return nil, err
			}
			return json.Marshal(up(o))
		},
		down: func(data []byte) ([]byte, error) {
			var n New
			if err := json.Unmarshal(data, &n); err != nil {
				return nil, err
			}
			return json.Marshal(down(n))
		},
	}
}

// decodeAs strictly decodes data into the payload type P.
func decodeAs[P Payload](data []byte) (Payload, error) {
	var p P
	if err := strictUnmarshal(data, &p); err != nil {
		return nil, err
	}
	return p, nil
}

// schemas is the one table of every event type's versions and upcasters. A new
// version of a type: freeze the payload's current shape as a struct of the old
// version (like orderPlacedV1), change the payload type, append one upcaster
// old → new to the type's steps, and leave write where it is until every
// consumer runs a build with the new version.
var schemas = map[Type]schema{
	TypeOrderPlaced: {decode: decodeAs[OrderPlaced], write: 1, steps: []step{
		upcaster(orderPlacedV1ToV2, orderPlacedV2ToV1), // 1 → 2: money as one object
	}},
	TypeOrderCancelled:   {decode: decodeAs[OrderCancelled], write: 1},
	TypePaymentCompleted: {decode: decodeAs[PaymentCompleted], write: 1},
	TypePaymentFailed:    {decode: decodeAs[PaymentFailed], write: 1},
	TypePaymentRefunded:  {decode: decodeAs[PaymentRefunded], write: 1},
	// Added after the first release: a consumer built before it poisons these
	// (ErrUnknownType), so the order service is deployed first.
	TypePaymentRefundFailed: {decode: decodeAs[PaymentRefundFailed], write: 1},
}

// orderPlacedV1 is the data of order.placed in schema version 1 (frozen: never
// change it; it decodes what producers wrote before version 2).
type orderPlacedV1 struct {
	CustomerID  string `json:"customer_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
}

// orderPlacedV1ToV2 is the upcaster of order.placed from version 1 to 2: the
// flat amount_cents and currency become one Money. No fact is added or lost.
func orderPlacedV1ToV2(v orderPlacedV1) OrderPlaced {
	return OrderPlaced{CustomerID: v.CustomerID, Amount: Money{MinorUnits: v.AmountCents, Currency: v.Currency}}
}

// orderPlacedV2ToV1 writes a version 2 order.placed as version 1, for a
// producer that still writes version 1.
func orderPlacedV2ToV1(p OrderPlaced) orderPlacedV1 {
	return orderPlacedV1{CustomerID: p.CustomerID, AmountCents: p.Amount.MinorUnits, Currency: p.Amount.Currency}
}

// NewestVersion returns the newest schema version of t this build decodes
// (every version from 1 to it is decoded), or 0 for a type it does not know.
func NewestVersion(t Type) int {
	s, ok := schemas[t]
	if !ok {
		return 0
	}
	return s.newest()
}

// DefaultWriteVersion returns the schema version Encode writes for an event of
// type t that names none, or 0 for a type this build does not know.
func DefaultWriteVersion(t Type) int { return schemas[t].write }

// Versions says which schema version a producer writes, by event type; a type
// not in it is written in its DefaultWriteVersion. A service reads it from its
// configuration (e.g. ORDER_EVENT_VERSIONS="order.placed:2") to move to a new
// version once every consumer decodes it.
type Versions map[Type]int

// Validate reports every entry whose type this build does not know or whose
// version it cannot write (outside 1..NewestVersion).
func (v Versions) Validate() error {
	var errs []error
	types := make([]Type, 0, len(v))
	for t := range v {
		types = append(types, t)
	}
	slices.Sort(types)
	for _, t := range types {
		switch newest := NewestVersion(t); {
		case newest == 0:
			errs = append(errs, fmt.Errorf("event type %q is not one this build knows", t))
		case v[t] < 1 || v[t] > newest:
			errs = append(errs, fmt.Errorf("event type %s: schema version %d is outside 1..%d", t, v[t], newest))
		}
	}
	return errors.Join(errs...)
}

// Of returns the version to write for events of type t: the configured one, or
// 0, which Encode turns into the type's default write version.
func (v Versions) Of(t Type) int { return v[t] }

// String lists the entries as "type:version,..." in type order (the form of
// the configuration variable).
func (v Versions) String() string {
	parts := make([]string, 0, len(v))
	for t, n := range v {
		parts = append(parts, fmt.Sprintf("%s:%d", t, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// Decoder decodes events, optionally refusing versions newer than a bound per
// type. The zero Decoder accepts every version this build knows (Decode).
// MaxVersions reproduces a consumer built before a version existed: a test or a
// rollout rehearsal uses it to show what such a consumer does with the new
// version (ErrUnsupportedVersion, reason code unsupported_version).
type Decoder struct {
	// MaxVersions caps the schema version accepted per type; a type not in it
	// accepts 1..NewestVersion.
	MaxVersions map[Type]int
}

// supports reports whether d decodes version v (>= 1) of the type that s
// describes, and the newest version it decodes.
func (d Decoder) supports(t Type, s schema, v int) (newest int, ok bool) {
	newest = s.newest()
	if m, capped := d.MaxVersions[t]; capped && m < newest {
		newest = m
	}
	return newest, v <= newest
}

// upcast turns data of version v into data of the newest version, one step at
// a time.
func (s schema) upcast(v int, data []byte) ([]byte, error) {
	for ; v < s.newest(); v++ {
		var err error
		if data, err = s.steps[v-1].up(data); err != nil {
			var de *DecodeError
			if errors.As(err, &de) {
				return nil, err
			}
			return nil, &DecodeError{Kind: ErrMalformed, Detail: fmt.Sprintf("upcasting from version %d: %v", v, err)}
		}
	}
	return data, nil
}

// downcast turns data of the newest version into data of version v, for a
// producer that writes an older version.
func (s schema) downcast(v int, data []byte) ([]byte, error) {
	for n := s.newest(); n > v; n-- {
		var err error
		if data, err = s.steps[n-2].down(data); err != nil {
			return nil, fmt.Errorf("writing version %d: %w", n-1, err)
		}
	}
	return data, nil
}
