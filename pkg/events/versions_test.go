package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
)

// placedJSON is an order.placed envelope of schema version v with data.
func placedJSON(v, data string) []byte {
	return []byte(`{"type":"order.placed","schema_version":` + v + `,"order_id":"o-1","order_version":1,` +
		`"occurred_at":"2026-11-23T09:00:00Z","data":` + data + `}`)
}

// wire returns the envelope's schema_version and data of an encoded message.
func wire(t *testing.T, msg *message.Message) (int, string) {
	t.Helper()
	var env struct {
		SchemaVersion int             `json:"schema_version"`
		Data          json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(msg.Payload, &env); err != nil {
		t.Fatal(err)
	}
	return env.SchemaVersion, string(env.Data)
}

// TestOrderPlacedVersionsRoundTrip: an OrderPlaced written in each version
// (none named: the default write version) has that version's shape on the
// wire and decodes back to the same event.
func TestOrderPlacedVersionsRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		version  int
		wantWire int
		wantData string
	}{
		{"default write version", 0, 1, `{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`},
		{"version 1", 1, 1, `{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`},
		{"version 2", 2, 2, `{"customer_id":"c-1","amount":{"minor_units":1250,"currency":"EUR"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := placed()
			in.SchemaVersion = tt.version
			msg, err := events.Encode(in)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if v, data := wire(t, msg); v != tt.wantWire || data != tt.wantData {
				t.Fatalf("wire: version %d data %s, want version %d data %s", v, data, tt.wantWire, tt.wantData)
			}
			out, err := events.Decode(msg)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			in.SchemaVersion = tt.wantWire
			if out != in {
				t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", out, in)
			}
		})
	}
}

// TestUpcastEqualsNewestDecoding: a fact written as version 1 decodes to the
// same payload as the same fact written as version 2; only SchemaVersion tells
// them apart.
func TestUpcastEqualsNewestDecoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		v1, v2 string
	}{
		{"euros", `{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`,
			`{"customer_id":"c-1","amount":{"minor_units":1250,"currency":"EUR"}}`},
		{"yen, no decimals", `{"customer_id":"alice","amount_cents":1,"currency":"JPY"}`,
			`{"customer_id":"alice","amount":{"currency":"JPY","minor_units":1}}`},
		{"largest amount", `{"currency":"USD","amount_cents":100000000,"customer_id":"c-9"}`,
			`{"amount":{"minor_units":100000000,"currency":"USD"},"customer_id":"c-9"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, err := events.Decode(message.NewMessage("id-1", placedJSON("1", tt.v1)))
			if err != nil {
				t.Fatalf("Decode v1: %v", err)
			}
			cur, err := events.Decode(message.NewMessage("id-1", placedJSON("2", tt.v2)))
			if err != nil {
				t.Fatalf("Decode v2: %v", err)
			}
			if old.SchemaVersion != 1 || cur.SchemaVersion != 2 {
				t.Fatalf("SchemaVersion = %d and %d, want 1 and 2", old.SchemaVersion, cur.SchemaVersion)
			}
			old.SchemaVersion = cur.SchemaVersion
			if old != cur {
				t.Fatalf("the upcast v1 differs from v2:\n v1 %+v\n v2 %+v", old, cur)
			}
		})
	}
}

// TestVersionedDecodeRejects: each version is decoded strictly in its own
// shape; a version outside what the decoder accepts is ErrUnsupportedVersion
// with the reason code unsupported_version.
func TestVersionedDecodeRejects(t *testing.T) {
	t.Parallel()
	v1 := `{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`
	v2 := `{"customer_id":"c-1","amount":{"minor_units":1250,"currency":"EUR"}}`
	capped := events.Decoder{MaxVersions: map[events.Type]int{events.TypeOrderPlaced: 1}}
	tests := []struct {
		name     string
		decoder  events.Decoder
		payload  []byte
		want     error
		wantCode string
	}{
		{"v2 data under version 1", events.Decoder{}, placedJSON("1", v2), events.ErrMalformed, failure.ReasonInvalidEvent},
		{"v1 with an unknown field", events.Decoder{}, placedJSON("1", strings.Replace(v1, `}`, `,"tip":1}`, 1)), events.ErrMalformed, failure.ReasonInvalidEvent},
		{"v2 with an unknown money field", events.Decoder{}, placedJSON("2", strings.Replace(v2, `"EUR"`, `"EUR","rate":1`, 1)), events.ErrMalformed, failure.ReasonInvalidEvent},
		{"v1 breaking the contract", events.Decoder{}, placedJSON("1", strings.Replace(v1, `1250`, `0`, 1)), events.ErrInvalid, failure.ReasonInvalidEvent},
		{"v2 breaking the contract", events.Decoder{}, placedJSON("2", strings.Replace(v2, `EUR`, `eur`, 1)), events.ErrInvalid, failure.ReasonInvalidEvent},
		{"version 3", events.Decoder{}, placedJSON("3", v2), events.ErrUnsupportedVersion, events.ReasonUnsupportedVersion},
		{"a version 1 consumer given version 2", capped, placedJSON("2", v2), events.ErrUnsupportedVersion, events.ReasonUnsupportedVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.decoder.Decode(message.NewMessage("id-1", tt.payload))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode error = %v, want %v", err, tt.want)
			}
			if !failure.IsPermanent(err) || failure.ReasonCode(err) != tt.wantCode {
				t.Fatalf("Decode error: permanent %t, reason code %q; want permanent, %q", failure.IsPermanent(err), failure.ReasonCode(err), tt.wantCode)
			}
		})
	}
	// The capped decoder still reads what it accepts.
	if _, err := capped.Decode(message.NewMessage("id-1", placedJSON("1", v1))); err != nil {
		t.Fatalf("a version 1 consumer given version 1: %v", err)
	}
}

// TestEncodeVersion: a producer writes only versions this build knows.
func TestEncodeVersion(t *testing.T) {
	t.Parallel()
	for _, v := range []int{-1, 3} {
		e := placed()
		e.SchemaVersion = v
		if _, err := events.Encode(e); !errors.Is(err, events.ErrUnsupportedVersion) {
			t.Errorf("Encode version %d: error = %v, want ErrUnsupportedVersion", v, err)
		}
	}
	e := placed()
	e.Payload = events.OrderCancelled{Reason: "r"}
	e.SchemaVersion = 2
	if _, err := events.Encode(e); !errors.Is(err, events.ErrUnsupportedVersion) {
		t.Errorf("Encode order.cancelled version 2: error = %v, want ErrUnsupportedVersion", err)
	}
}

// TestVersions: what a producer's configuration may name.
func TestVersions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		v       events.Versions
		wantErr string
	}{
		{"none", nil, ""},
		{"order.placed v2", events.Versions{events.TypeOrderPlaced: 2}, ""},
		{"order.placed v1", events.Versions{events.TypeOrderPlaced: 1}, ""},
		{"unknown type", events.Versions{"order.shipped": 1}, `"order.shipped" is not one this build knows`},
		{"version too new", events.Versions{events.TypeOrderPlaced: 3}, "outside 1..2"},
		{"version zero", events.Versions{events.TypeOrderCancelled: 0}, "outside 1..1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.v.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if got := (events.Versions{events.TypeOrderPlaced: 2, events.TypeOrderCancelled: 1}).String(); got != "order.cancelled:1,order.placed:2" {
		t.Errorf("String() = %q", got)
	}
	if events.DefaultWriteVersion(events.TypeOrderPlaced) != 1 || events.NewestVersion(events.TypeOrderPlaced) != 2 {
		t.Errorf("order.placed: default write version %d, newest %d; want 1 (until every consumer reads 2) and 2",
			events.DefaultWriteVersion(events.TypeOrderPlaced), events.NewestVersion(events.TypeOrderPlaced))
	}
}
