package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Outcome classifies one request of the load.
type Outcome string

// Outcomes. Only Accepted orders are promised a terminal state; an Indeterminate
// request (timeout, broken connection, 5xx other than 503) may or may not have
// created an order, which must then obey every money invariant too.
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
}

// History is what the load recorded.
type History struct {
	mu       sync.Mutex
	Requests []Request
	// Cancels counts cancellation requests by HTTP status (0: no answer).
	Cancels map[int]int
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
func RunLoad(ctx context.Context, s *Stack, cfg LoadConfig) *History {
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
		replica := s.nextOrderReplica(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := Request{SentAt: time.Now(), CustomerID: customer, Amount: amount}
			status, o, err := s.PlaceOrder(ctx, replica, customer, amount, "EUR")
			r.Latency, r.Status, r.OrderID = time.Since(r.SentAt), status, o.ID
			switch {
			case err != nil:
				r.Outcome, r.Err = Indeterminate, err.Error()
				if errors.Is(err, context.Canceled) {
					r.Err = "cancelled"
				}
			case status == http.StatusCreated:
				r.Outcome = Accepted
			case status == http.StatusServiceUnavailable:
				r.Outcome = Unavailable
			case status >= 400 && status < 500:
				r.Outcome = Rejected
			default:
				r.Outcome, r.Err = Indeterminate, fmt.Sprintf("status %d", status)
			}
			h.mu.Lock()
			h.Requests = append(h.Requests, r)
			h.mu.Unlock()
			if r.Outcome == Accepted && cancelAfter >= 0 {
				time.Sleep(cancelAfter)
				status, _, _ := s.CancelOrder(ctx, r.OrderID)
				h.mu.Lock()
				h.Cancels[status]++
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
