package app

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// Idempotency keys: a client that cannot tell whether its POST took
// effect (a timeout, a broken connection, a 503 whose commit may have happened)
// sends it again with the same Idempotency-Key. The key is stored in the same
// transaction as the order change, so it exists exactly when the change does:
// a retry of a request that took effect is answered with the stored answer, one
// of a request that did not take effect runs as new.

// MaxKeyLength is the longest Idempotency-Key accepted.
const MaxKeyLength = 128

// DefaultKeyTTL is how long a key is remembered unless configured otherwise.
const DefaultKeyTTL = 24 * time.Hour

// keyRe is the accepted key syntax: 1 to MaxKeyLength characters that need no
// quoting anywhere (a UUID, a ULID, a base64url token all fit).
var keyRe = regexp.MustCompile(`^[A-Za-z0-9._:~-]{1,128}$`)

// ValidKey reports whether key is an acceptable Idempotency-Key value.
func ValidKey(key string) bool { return keyRe.MatchString(key) }

// Idempotency is the Idempotency-Key of one request and what identifies that
// request. The zero value is never used: a request without a key passes nil.
type Idempotency struct {
	// Key is the client's key (validated by the service: CodeInvalidKey).
	Key string
	// Scope is the operation the key belongs to, e.g. "POST /orders"; the same key
	// in two scopes is two different keys.
	Scope string
	// Fingerprint identifies the request (method, path and canonical body, see
	// the HTTP adapter): the same key with another fingerprint is refused with
	// CodeKeyReused.
	Fingerprint string
	// Render renders the answer the client gets for the order as the request
	// leaves it. It must not be nil, and must give the same answer for the same
	// order.
	Render func(o *domain.Order) (Answer, error)
}

// Answer is what the client of a keyed request received, as the adapter that
// served it rendered it. It is stored with the key, in the transaction of the
// change, and every replay sends it unchanged: a replay is byte for byte the
// original answer, whatever the order or the rendering became since. The
// application never reads it.
type Answer struct {
	Status int
	// Header holds the headers that belong to the answer (Content-Type,
	// Location), not those of each response (Date, X-Correlation-ID).
	Header map[string]string
	Body   []byte
}

// KeyClaim is what a repository stores for an idempotency key, in the same
// transaction as the change the key guards.
type KeyClaim struct {
	Scope, Key, Fingerprint string
	// CreatedAt is the request's time; a stored key whose ExpiresAt is not after
	// it counts as absent.
	CreatedAt time.Time
	// ExpiresAt is when the key may be forgotten.
	ExpiresAt time.Time
	// Render renders the answer stored with the key (Idempotency.Render).
	Render func(o *domain.Order) (Answer, error)
}

// StoredKey is a key some earlier request committed: its fingerprint and the
// answer that request got.
type StoredKey struct {
	Fingerprint string
	Answer      Answer
}

// ErrKeyInFlight is what a repository returns when another transaction holds
// the key: the first request with it has not finished (committed or rolled
// back) yet. The repository never waits for it.
var ErrKeyInFlight = errors.New("idempotency key held by a request in flight")

// Result is the outcome of a write that may be the replay of an earlier one.
type Result struct {
	// Order is the order as the request left it; nil for a replay.
	Order *domain.Order
	// Replayed is true when nothing was done now because the same request with
	// the same key had already taken effect; Answer is then the answer that
	// request got, to be sent as it is.
	Replayed bool
	Answer   Answer
}

// claim turns a request's key into what the repository stores, or refuses a
// malformed key with CodeInvalidKey. A nil idem gives a nil claim.
func (s *Service) claim(idem *Idempotency, now time.Time) (*KeyClaim, error) {
	if idem == nil {
		return nil, nil
	}
	if !ValidKey(idem.Key) {
		return nil, &apperr.Error{Code: CodeInvalidKey,
			Message: "Idempotency-Key must be 1 to 128 characters of A-Z a-z 0-9 . _ : ~ -"}
	}
	if idem.Render == nil {
		return nil, errors.New("idempotency key without a renderer for its answer")
	}
	return &KeyClaim{Scope: idem.Scope, Key: idem.Key, Fingerprint: idem.Fingerprint,
		CreatedAt: now, ExpiresAt: now.Add(s.KeyTTL), Render: idem.Render}, nil
}

// settle decides what a keyed write's answer is, given what the repository
// reported: the new order (stored == nil), a replay of the stored answer (same
// fingerprint), CodeKeyReused (another request used the key) or CodeKeyInFlight.
func settle(claim *KeyClaim, stored *StoredKey, fresh *domain.Order, err error) (Result, error) {
	switch {
	case errors.Is(err, ErrKeyInFlight):
		return Result{}, &apperr.Error{Code: CodeKeyInFlight,
			Message: "a request with this Idempotency-Key is still in progress; retry it later", Err: err}
	case err != nil:
		return Result{}, err
	case stored == nil:
		return Result{Order: fresh}, nil
	case stored.Fingerprint != claim.Fingerprint:
		return Result{}, &apperr.Error{Code: CodeKeyReused,
			Message: "this Idempotency-Key was used for a different request; use a new key for a new request"}
	}
	return Result{Replayed: true, Answer: stored.Answer}, nil
}

// DeleteExpiredKeys deletes idempotency keys that expired before now, in
// batches of at most batch rows (each its own short transaction), until a batch
// is not full or maxBatches ran, and returns how many it deleted. Bounded on
// purpose: a backlog is worked off over several calls instead of one long one.
func (s *Service) DeleteExpiredKeys(ctx context.Context, batch, maxBatches int) (int, error) {
	now := s.Now()
	total := 0
	for range maxBatches {
		n, err := s.orders.DeleteExpiredKeys(ctx, now, batch)
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
	return total, nil
}
