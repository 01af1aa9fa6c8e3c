package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Outcome classifies one request of the load.
type Outcome string

// Outcomes, of a request's last attempt. Only Accepted orders are promised a
// terminal state; an Indeterminate request (timeout, broken connection, 5xx
// other than 503, 409 while its key was in flight) may or may not have created
// an order, which must then obey every money invariant too.
const (
	Accepted      Outcome = "accepted"      // 201, with an order id
	Rejected      Outcome = "rejected"      // 4xx: the client's mistake
	Unavailable   Outcome = "unavailable"   // 503: the service said nothing was stored
	Indeterminate Outcome = "indeterminate" // no answer, or another 5xx
)

// Request is one entry of the load's history.
type Request struct {
	SentAt     time.Time
	Latency    time.Duration
	CustomerID string
	Amount     int64
	Status     int
	OrderID    string
	Outcome    Outcome
	Err        string
	// Key is the Idempotency-Key every attempt carried ("" with keys off).
	Key string
	// Attempts is how many times the request was sent (1 without retries);
	// AttemptLog says how each attempt ended ("201", "503", "EOF", ...; a
	// replayed answer is marked "201 replayed").
	Attempts   int
	AttemptLog []string
	// Replayed is true when the last answer carried Idempotent-Replayed: true.
	Replayed bool
}

// Customer is one kind of customer in the load's mix.
type Customer struct {
	// IDs are drawn at random for each request.
	IDs []string
	// Weight is the relative share of requests.
	Weight int
}

// LoadConfig is an open-model load: requests start at a fixed rate whatever the
// answers, like real users would.
type LoadConfig struct {
	Rate     float64 // orders per second
	Duration time.Duration
	Mix      []Customer
	// MinAmount and MaxAmount bound the order amounts (cents, EUR).
	MinAmount, MaxAmount int64
	// CancelFraction of the accepted orders are cancelled by the client, at a
	// random moment up to 3 s after acceptance (some before, some after payment).
	CancelFraction float64
	Seed           uint64
	// WithoutKeys sends no Idempotency-Key (the negative control of
	// client-retries). Retries still happen: a client that retries without a key
	// creates a second order when the first one's answer was lost.
	WithoutKeys bool
	// MaxAttempts bounds how often one request (order or cancellation) is sent
	// when its outcome stays indeterminate: a transport error (timeout,
	// connection reset or refused), 503, or 409 (its key in flight). Default 10,
	// with backoff from RetryBackoff doubling up to 4 s: a retry window of about
	// 24 s, well over the longest intake outage of the fault suite (10 s, plus
	// the server's restart), so that every request ends with a definite answer.
	MaxAttempts int
	// RetryBackoff is the wait before the second attempt (default 250 ms).
	RetryBackoff time.Duration
	// OrderAddr, if set, is where every request goes (host:port) instead of the
	// order replicas, e.g. a proxy in front of them (ClientProxy).
	OrderAddr string
}

// defaults fills the zero retry settings.
func (c LoadConfig) defaults() LoadConfig {
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 250 * time.Millisecond
	}
	return c
}

// History is what the load recorded.
type History struct {
	mu       sync.Mutex
	Requests []Request
	// Cancels counts cancellation requests by the HTTP status of their last
	// attempt (0: no answer).
	Cancels map[int]int
	// CancelAttempts counts every attempt of the cancellations.
	CancelAttempts int
}

// Attempts returns how many requests were sent in all (orders, counting each
// retry) and how many of the orders got a replayed answer.
func (h *History) Attempts() (attempts, replayed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.Requests {
		attempts += r.Attempts
		if r.Replayed {
			replayed++
		}
	}
	return attempts, replayed
}

// ServerErrors counts the answers with a 5xx status other than 503 (the one a
// service gives when it stored nothing and the client may retry): every
// attempt of every order, and the last attempt of every cancellation.
func (h *History) ServerErrors() int {
	return h.answers(func(status int) bool { return status >= 500 && status != http.StatusServiceUnavailable })
}

// Refused counts the answers 503, as ServerErrors counts.
func (h *History) Refused() int {
	return h.answers(func(status int) bool { return status == http.StatusServiceUnavailable })
}

func (h *History) answers(match func(status int) bool) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.Requests {
		for _, a := range r.AttemptLog {
			if status, err := strconv.Atoi(strings.Fields(a + " ")[0]); err == nil && match(status) {
				n++
			}
		}
	}
	for status, count := range h.Cancels {
		if match(status) {
			n += count
		}
	}
	return n
}

// Count returns how many requests had each outcome.
func (h *History) Count() map[Outcome]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := map[Outcome]int{}
	for _, r := range h.Requests {
		c[r.Outcome]++
	}
	return c
}

// AcceptedIDs returns the ids of the accepted orders.
func (h *History) AcceptedIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []string
	for _, r := range h.Requests {
		if r.Outcome == Accepted {
			ids = append(ids, r.OrderID)
		}
	}
	return ids
}

// RunLoad sends orders to the stack's running order replicas, round-robin, at
// cfg.Rate for cfg.Duration, and returns the history once every request has an
// answer or has timed out (5 s).
//
// Every request carries an Idempotency-Key (unless cfg.WithoutKeys) and is
// retried with the same key, up to cfg.MaxAttempts times with backoff, while its
// outcome is indeterminate; each retry goes to a running replica again, as a
// load balancer would route it.
func RunLoad(ctx context.Context, s *Stack, cfg LoadConfig) *History {
	cfg = cfg.defaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	total := 0
	for _, c := range cfg.Mix {
		total += c.Weight
	}
	h := &History{Cancels: map[int]int{}}
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	n := int(cfg.Rate * cfg.Duration.Seconds())
	start := time.Now()
	for i := range n {
		// pick everything from the seeded source before waiting, so the sequence of
		// requests depends only on the seed
		w := rng.IntN(total)
		var ids []string
		for _, c := range cfg.Mix {
			if w < c.Weight {
				ids = c.IDs
				break
			}
			w -= c.Weight
		}
		customer := ids[rng.IntN(len(ids))]
		amount := cfg.MinAmount + rng.Int64N(cfg.MaxAmount-cfg.MinAmount+1)
		cancelAfter := time.Duration(-1)
		if rng.Float64() < cfg.CancelFraction {
			cancelAfter = time.Duration(rng.Int64N(int64(3 * time.Second)))
		}

		select {
		case <-ctx.Done():
			wg.Wait()
			return h
		case <-time.After(time.Until(start.Add(time.Duration(i) * interval))):
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := Request{SentAt: time.Now(), CustomerID: customer, Amount: amount}
			if !cfg.WithoutKeys {
				r.Key = fmt.Sprintf("load-%d-%d", cfg.Seed, i)
			}
			body, _ := json.Marshal(map[string]any{"customer_id": customer, "amount_cents": amount, "currency": "EUR"})
			var a answer
			r.Attempts, r.AttemptLog, a = s.retry(ctx, cfg, func() answer {
				return s.send(ctx, s.orderAddr(cfg, i), "/orders", r.Key, body)
			})
			r.Latency, r.Status, r.OrderID, r.Replayed = time.Since(r.SentAt), a.status, a.order.ID, a.replayed
			switch {
			case a.err != nil:
				r.Outcome, r.Err = Indeterminate, a.err.Error()
				if errors.Is(a.err, context.Canceled) {
					r.Err = "cancelled"
				}
			case a.status == http.StatusCreated:
				r.Outcome = Accepted
			case a.status == http.StatusServiceUnavailable:
				r.Outcome = Unavailable
			case a.status == http.StatusConflict:
				r.Outcome, r.Err = Indeterminate, "409: the key was still in flight at the last attempt"
			case a.status >= 400 && a.status < 500:
				r.Outcome = Rejected
			default:
				r.Outcome, r.Err = Indeterminate, fmt.Sprintf("status %d", a.status)
			}
			h.mu.Lock()
			h.Requests = append(h.Requests, r)
			h.mu.Unlock()
			if r.Outcome == Accepted && cancelAfter >= 0 {
				time.Sleep(cancelAfter)
				key := ""
				if !cfg.WithoutKeys {
					key = r.Key + "-cancel"
				}
				n, _, a := s.retry(ctx, cfg, func() answer {
					return s.send(ctx, s.orderAddr(cfg, i), "/orders/"+r.OrderID+"/cancel", key, nil)
				})
				h.mu.Lock()
				h.Cancels[a.status]++
				h.CancelAttempts += n
				h.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return h
}

// nextOrderReplica picks a running order replica (a load balancer would route
// around a dead one); if none runs, it returns i and the request fails.
func (s *Stack) nextOrderReplica(i int) int {
	for k := range len(s.Orders) {
		r := (i + k) % len(s.Orders)
		if s.Orders[r].Running() {
			return r
		}
	}
	return i
}

// orderAddr is where the i-th request (or its retry) goes: cfg.OrderAddr if
// set, else a running order replica.
func (s *Stack) orderAddr(cfg LoadConfig, i int) string {
	if cfg.OrderAddr != "" {
		return cfg.OrderAddr
	}
	return s.Orders[s.nextOrderReplica(i)%len(s.Orders)].HTTPAddr
}

// answer is how one attempt ended.
type answer struct {
	status   int
	order    OrderView
	replayed bool
	err      error
}

// indeterminate reports whether the attempt may or may not have taken effect
// (or, for 409, has not finished yet), so that the client should send it again.
func (a answer) indeterminate() bool {
	return (a.err != nil && !errors.Is(a.err, context.Canceled)) ||
		a.status == http.StatusServiceUnavailable || a.status == http.StatusConflict
}

func (a answer) String() string {
	switch {
	case a.err != nil:
		return a.err.Error()
	case a.replayed:
		return strconv.Itoa(a.status) + " replayed"
	}
	return strconv.Itoa(a.status)
}

// retry calls attempt until its answer is definite or cfg.MaxAttempts ran,
// waiting cfg.RetryBackoff, then twice as long each time (at most 4 s), between
// attempts. It returns the number of attempts, how each ended and the last answer.
func (s *Stack) retry(ctx context.Context, cfg LoadConfig, attempt func() answer) (int, []string, answer) {
	var log []string
	wait := cfg.RetryBackoff
	for n := 1; ; n++ {
		a := attempt()
		log = append(log, a.String())
		if !a.indeterminate() || n >= cfg.MaxAttempts {
			return n, log, a
		}
		select {
		case <-ctx.Done():
			return n, log, a
		case <-time.After(wait):
		}
		wait = min(2*wait, 4*time.Second)
	}
}

// send POSTs body (nil: an empty JSON object) to path on addr with the Idempotency-Key key (""
// for none) and returns the answer, with the order for a 2xx.
func (s *Stack) send(ctx context.Context, addr, path, key string, body []byte) answer {
	if body == nil {
		body = []byte("{}") // not empty: an empty body would be http.NoBody, which the Transport may resend
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	// net/http's Transport resends a request with an Idempotency-Key by itself
	// when a reused connection breaks before the answer; without GetBody it
	// cannot, so every attempt is the load generator's own, and in the history.
	req.GetBody = nil
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		a.err = err
		return a
	}
	if resp.StatusCode < 300 {
		if err := json.Unmarshal(data, &a.order); err != nil {
			a.err = fmt.Errorf("decoding %s: %w", strings.TrimSpace(string(data)), err)
		}
	}
	return a
}
