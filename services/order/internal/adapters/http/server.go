// Package http is the order service's HTTP API, on Echo v4. Every error response
// is RFC 9457 problem+json (package problem, with this service's own codes in
// problem.go); a client mistake is always a 4xx. The application's types carry
// no JSON tags: this package maps them to its own response types.
package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/tracing"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// HeaderCorrelationID carries the correlation id of a request; the server takes
// it from the request if valid, otherwise uses the request id, and always returns it.
const HeaderCorrelationID = "X-Correlation-ID"

// HeaderIdempotencyKey is the request header that makes POST /orders and POST
// /orders/{id}/cancel safe to retry. Its value is a key of 1 to 128
// characters of A-Z a-z 0-9 . _ : ~ -, bare or as a quoted string (the
// structured-field form of the IETF draft).
const HeaderIdempotencyKey = "Idempotency-Key"

// HeaderIdempotentReplayed is set to "true" on an answer that repeats the one
// given to an earlier request with the same Idempotency-Key.
const HeaderIdempotentReplayed = "Idempotent-Replayed"

// OpenAPI is the OpenAPI 3.1 document of this API (YAML), without the
// poison admin endpoints the service mounts beside it (poisonhttp.OpenAPI): the
// service merges both (apidoc.Build) and serves the result at /openapi.json.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Config configures the HTTP API.
type Config struct {
	// RequestTimeout bounds each request's work, including database calls and
	// reading its body: a client that sends its body slower is cut off (408, and
	// the connection closes).
	RequestTimeout time.Duration
	// Ready reports whether the service can serve (its database answers); /readyz
	// returns 503 while it fails.
	Ready func(ctx context.Context) error
	// Alive is the liveness check (normally Consumers.Health): /healthz returns
	// 503 while it fails, with its error text as the problem's detail, so that
	// text must be safe to show. Nil: always alive.
	Alive func(ctx context.Context) error
}

// NewServer returns the Echo instance serving the order API:
//
//	POST /orders                  place an order            201, 422, 400, 409, 503
//	POST /orders/{id}/cancel      cancel (refund if paid)   200, 404, 400, 409, 422, 503
//
// Both POSTs accept an Idempotency-Key (400 if malformed; 422 if it was used for
// a different request; 409 while the first request with it is in progress; a
// repeat of a request that took effect gets the original answer with
// Idempotent-Replayed: true).
//
//	GET  /orders/{id}             read one order            200, 404, 503
//	GET  /orders/{id}/timeline    the saga's messages       200, 404, 503
//	GET  /orders?customer_id=...  a customer's orders       200, 422, 503
//	GET  /healthz                 the process is alive      200, 503 (a consumer gave up)
//	GET  /readyz                  the database answers      200, 503 (also while stopping)
//
// The service serves it behind httpserver's guard, which answers 421,
// 403 and 415 before a request reaches these routes.
func NewServer(svc *app.Service, cfg Config, logger *slog.Logger) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(logger)
	e.Use(
		tracing.Echo("/healthz", "/readyz"), // a server span per request
		middleware.Recover(),
		requestID,
		withCorrelationID,
		middleware.BodyLimit("64K"),
		readDeadline(cfg.RequestTimeout),
		middleware.ContextTimeout(cfg.RequestTimeout),
	)
	h := handlers{svc: svc}
	e.POST("/orders", h.placeOrder)
	e.POST("/orders/:id/cancel", h.cancelOrder)
	e.GET("/orders/:id", h.getOrder)
	e.GET("/orders/:id/timeline", h.timeline)
	e.GET("/orders", h.listOrders)
	e.GET("/healthz", func(c echo.Context) error {
		if cfg.Alive != nil {
			if err := cfg.Alive(c.Request().Context()); err != nil {
				return &apperr.Error{Code: apperr.CodeUnavailable, Message: "the order service is not alive: " + err.Error(), Err: err}
			}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		if err := cfg.Ready(c.Request().Context()); err != nil {
			return &apperr.Error{Code: apperr.CodeUnavailable, Message: "the order service is stopping, one of its consumers gave up, or its database does not answer", Err: err}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	return e
}

// readDeadline makes reading the request body respect the request timeout:
// the connection's read deadline becomes now + timeout (the server's
// ReadTimeout still caps the whole request), and is cleared once the body is
// read. net/http goes on reading the connection while the handler runs, to
// notice a client that leaves; a deadline that fires there cancels the
// connection's context, and every later request on that keep-alive connection
// then starts canceled (golang/go#70834): a browser's console stream, which
// outlives the timeout, made every next request on its connection a 500. A
// request without a body gets no deadline of its own.
func readDeadline(timeout time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.ContentLength == 0 || req.Body == nil || req.Body == http.NoBody {
				return next(c)
			}
			rc := http.NewResponseController(c.Response())
			_ = rc.SetReadDeadline(time.Now().Add(timeout))
			req.Body = &deadlineUntilEOF{ReadCloser: req.Body, clear: func() { _ = rc.SetReadDeadline(time.Time{}) }}
			return next(c)
		}
	}
}

// deadlineUntilEOF clears the read deadline when its body has been read.
type deadlineUntilEOF struct {
	io.ReadCloser
	clear func()
	once  sync.Once
}

func (b *deadlineUntilEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.once.Do(b.clear)
	}
	return n, err
}

// correlationRe is what the server accepts from a client as a request id or a
// correlation id: 1 to MaxRequestIDLength characters of letters, digits and
// . _ : -. Both travel into event metadata, so their length is bounded here.
var correlationRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// MaxRequestIDLength bounds a client's X-Request-ID and X-Correlation-ID.
const MaxRequestIDLength = 128

// requestID sets the response's X-Request-ID: the client's if it matches
// correlationRe, else a new random one. A bad id is replaced, not rejected: the
// id is tracing context, not part of the order, and a client whose proxy adds a
// long id should not lose its order.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !correlationRe.MatchString(id) {
			id = newRequestID()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

// newRequestID returns 32 random hex digits.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

func withCorrelationID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(HeaderCorrelationID)
		if !correlationRe.MatchString(id) {
			id = c.Response().Header().Get(echo.HeaderXRequestID)
		}
		c.Set("correlation_id", id)
		c.Response().Header().Set(HeaderCorrelationID, id)
		return next(c)
	}
}

func correlationID(c echo.Context) string {
	id, _ := c.Get("correlation_id").(string)
	return id
}

type handlers struct{ svc *app.Service }

// placeOrderRequest is the body of POST /orders.
type placeOrderRequest struct {
	CustomerID  string `json:"customer_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
}

// orderResponse is an order as the API shows it.
type orderResponse struct {
	ID           string `json:"id"`
	CustomerID   string `json:"customer_id"`
	AmountCents  int64  `json:"amount_cents"`
	Currency     string `json:"currency"`
	Status       string `json:"status"`
	CancelReason string `json:"cancel_reason,omitempty"`
	Paid         bool   `json:"paid"`
	Refunded     bool   `json:"refunded"`
	// RefundFailure says why the payment service could not refund a cancelled,
	// paid order (e.g. "account_not_found"); the order then needs a person.
	RefundFailure string    `json:"refund_failure,omitempty"`
	Version       int       `json:"version"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func toResponse(o *domain.Order) orderResponse {
	return orderResponse{
		ID: o.ID, CustomerID: o.CustomerID, AmountCents: o.AmountCents, Currency: o.Currency,
		Status: string(o.Status), CancelReason: o.CancelReason, Paid: o.Paid, Refunded: o.Refunded,
		RefundFailure: o.RefundFailure, Version: o.Version, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
}

// timelineEntryResponse is a timeline entry as the API shows it.
type timelineEntryResponse struct {
	Topic            string            `json:"topic"`
	Partition        int32             `json:"partition"`
	Offset           int64             `json:"offset"`
	At               time.Time         `json:"at"`
	EventID          string            `json:"event_id"`
	EventType        string            `json:"type"`
	CorrelationID    string            `json:"correlation_id,omitempty"`
	CausedBy         string            `json:"caused_by,omitempty"`
	CausedByAttempts int               `json:"caused_by_attempts,omitempty"`
	Retries          int               `json:"retries"`
	Poisoned         *poisonedResponse `json:"poisoned,omitempty"`
	ReplayedAt       string            `json:"replayed_at,omitempty"`
}

// poisonedResponse says why and where a timeline entry's message was poisoned:
// a public reason code, never error text.
type poisonedResponse struct {
	ReasonCode string `json:"reason_code"`
	FromTopic  string `json:"from_topic"`
}

func toTimelineResponse(e app.TimelineEntry) timelineEntryResponse {
	r := timelineEntryResponse{
		Topic: e.Topic, Partition: e.Partition, Offset: e.Offset, At: e.At, EventID: e.EventID, EventType: e.EventType,
		CorrelationID: e.CorrelationID, CausedBy: e.CausedBy, CausedByAttempts: e.CausedByAttempts,
		Retries: e.Retries, ReplayedAt: e.ReplayedAt,
	}
	if e.Poisoned != nil {
		r.Poisoned = &poisonedResponse{ReasonCode: e.Poisoned.ReasonCode, FromTopic: e.Poisoned.FromTopic}
	}
	return r
}

func (h handlers) placeOrder(c echo.Context) error {
	var req placeOrderRequest
	if err := decodeStrict(c.Request().Body, &req); err != nil {
		return err
	}
	canonical, err := json.Marshal(req)
	if err != nil {
		return err
	}
	idem, err := idempotency(c, canonical, placedAnswer)
	if err != nil {
		return err
	}
	res, err := h.svc.PlaceOrder(c.Request().Context(), app.PlaceOrder{
		CustomerID: req.CustomerID, AmountCents: req.AmountCents, Currency: req.Currency,
		CorrelationID: correlationID(c), Idempotency: idem,
	})
	if err != nil {
		return err
	}
	return respond(c, res, placedAnswer)
}

func (h handlers) cancelOrder(c echo.Context) error {
	idem, err := idempotency(c, nil, cancelledAnswer) // the body is ignored, so it is no part of the request's identity
	if err != nil {
		return err
	}
	res, err := h.svc.CancelOrder(c.Request().Context(), c.Param("id"), correlationID(c), idem)
	if err != nil {
		return err
	}
	return respond(c, res, cancelledAnswer)
}

// placedAnswer and cancelledAnswer render the answers of the two POSTs (also
// the ones stored with an Idempotency-Key): the order as JSON, the way c.JSON
// writes it, with 201 and its Location, or with 200.
func placedAnswer(o *domain.Order) (app.Answer, error) {
	a, err := orderAnswer(http.StatusCreated, o)
	a.Header[echo.HeaderLocation] = "/orders/" + o.ID
	return a, err
}

func cancelledAnswer(o *domain.Order) (app.Answer, error) {
	return orderAnswer(http.StatusOK, o)
}

func orderAnswer(status int, o *domain.Order) (app.Answer, error) {
	var body bytes.Buffer
	err := json.NewEncoder(&body).Encode(toResponse(o))
	return app.Answer{Status: status, Header: map[string]string{echo.HeaderContentType: echo.MIMEApplicationJSON},
		Body: body.Bytes()}, err
}

// respond writes the answer of a POST: a replay's stored answer as it is, with
// Idempotent-Replayed: true, byte for byte the one the first request got;
// otherwise render's answer for the order (the same function that rendered the
// answer stored with a key).
func respond(c echo.Context, res app.Result, render func(*domain.Order) (app.Answer, error)) error {
	a := res.Answer
	if res.Replayed {
		c.Response().Header().Set(HeaderIdempotentReplayed, "true")
	} else {
		var err error
		if a, err = render(res.Order); err != nil {
			return err
		}
	}
	for name, value := range a.Header {
		c.Response().Header().Set(name, value)
	}
	c.Response().WriteHeader(a.Status)
	_, err := c.Response().Write(a.Body)
	return err
}

// idempotency reads the request's Idempotency-Key (nil if it has none) and
// identifies the request: scope is the route ("POST /orders/:id/cancel"), the
// fingerprint a SHA-256 of method, path and canonical body (the decoded body
// encoded again, so whitespace and field order do not count); render renders
// the answer stored with the key. The key's syntax
// is checked by the application (a malformed key is a 400); two header fields
// are refused here.
func idempotency(c echo.Context, canonicalBody []byte, render func(*domain.Order) (app.Answer, error)) (*app.Idempotency, error) {
	values := c.Request().Header.Values(HeaderIdempotencyKey)
	switch len(values) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, &apperr.Error{Code: app.CodeInvalidKey, Message: "send one Idempotency-Key header, not several"}
	}
	key := values[0]
	if len(key) >= 2 && key[0] == '"' && key[len(key)-1] == '"' {
		key = key[1 : len(key)-1] // sf-string form: "…"
	}
	h := sha256.New()
	h.Write([]byte(c.Request().Method + "\n" + c.Request().URL.Path + "\n"))
	h.Write(canonicalBody)
	return &app.Idempotency{
		Key:         key,
		Scope:       c.Request().Method + " " + c.Path(),
		Fingerprint: hex.EncodeToString(h.Sum(nil)),
		Render:      render,
	}, nil
}

func (h handlers) timeline(c echo.Context) error {
	entries, err := h.svc.OrderTimeline(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	out := make([]timelineEntryResponse, len(entries))
	for i, e := range entries {
		out[i] = toTimelineResponse(e)
	}
	return c.JSON(http.StatusOK, map[string]any{"order_id": c.Param("id"), "entries": out})
}

func (h handlers) getOrder(c echo.Context) error {
	o, err := h.svc.Order(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toResponse(o))
}

func (h handlers) listOrders(c echo.Context) error {
	list, err := h.svc.OrdersOfCustomer(c.Request().Context(), c.QueryParam("customer_id"))
	if err != nil {
		return err
	}
	out := make([]orderResponse, len(list))
	for i, o := range list {
		out[i] = toResponse(o)
	}
	return c.JSON(http.StatusOK, map[string]any{"orders": out})
}

// decodeStrict reads one JSON object into v, rejecting unknown fields, wrong
// types and trailing data with a 400 that says what is wrong. The server's guard
// (httpserver.Guard) has refused bodies not sent as application/json.
func decodeStrict(body io.Reader, v any) error {
	data, err := io.ReadAll(body)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return echo.NewHTTPError(http.StatusRequestTimeout, "the body did not arrive within the request timeout")
	}
	if err != nil {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "the body is too large or could not be read")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return echo.NewHTTPError(http.StatusBadRequest, "the body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return echo.NewHTTPError(http.StatusBadRequest,
				fmt.Sprintf("field %q has the wrong type: got a JSON %s, want %s", typeErr.Field, typeErr.Value, typeErr.Type))
		}
		return echo.NewHTTPError(http.StatusBadRequest, "the body is not a valid JSON object: "+err.Error())
	}
	if dec.More() {
		return echo.NewHTTPError(http.StatusBadRequest, "the body holds more than one JSON value")
	}
	return nil
}
