// Package lifecycle runs the long-lived parts of one service process (HTTP
// server, message consumers, outbox forwarder, periodic jobs) and stops them
// gracefully, in the order ADR 24 defines, within one bound.
//
// It knows nothing of Kafka, SQL or Watermill: each part is a small interface
// (Consumers, Forwarder, Jobs, io.Closer) that the patterns' parts satisfy
// (consumer.Consumers, outbox.Forwarder, jobs.Jobs), so a service that has no
// consumers, or no outbox, leaves that field nil.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Config bounds a graceful stop. A service nests it as
// <SERVICE>_STOP_*, e.g. ORDER_STOP_DRAIN_TIMEOUT.
type Config struct {
	// DrainTimeout bounds a whole stop, from the signal to the return of Run: the
	// readiness delay, the HTTP drain, the consumers' in-flight handlers, the
	// forwarder's last batch and closing the clients. In-flight work gets
	// DrainTimeout minus a reserve (a quarter of it, at most 3 s) to finish; what
	// is still running then is abandoned: its transaction rolls back, its message
	// is neither acknowledged nor poisoned and is delivered again after the
	// restart. Keep it below the orchestrator's grace period (Kubernetes: 30 s).
	// Default 15 s; 1 s..10 min.
	DrainTimeout time.Duration `env:"DRAIN_TIMEOUT"`
	// UnreadyDelay is how long the service keeps serving, with /readyz already
	// answering 503, before it closes its listener: the time a load balancer
	// needs to notice and stop sending new requests. Default 0 (no load balancer
	// in front, e.g. `make run`); behind one, set it above its probe interval. It
	// counts against DrainTimeout and must be less than half of it.
	UnreadyDelay time.Duration `env:"UNREADY_DELAY"`
}

// Defaults returns c with zero fields set to their defaults.
func (c Config) Defaults() Config {
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 15 * time.Second
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.DrainTimeout < time.Second || c.DrainTimeout > 10*time.Minute:
		return fmt.Errorf("stop: drain timeout %s is outside 1s..10m", c.DrainTimeout)
	case c.UnreadyDelay < 0 || c.UnreadyDelay >= c.DrainTimeout/2:
		return fmt.Errorf("stop: unready delay %s must be >= 0 and less than half the drain timeout %s", c.UnreadyDelay, c.DrainTimeout)
	}
	return nil
}

// reserve is the part of DrainTimeout kept for closing the forwarder and the
// clients after in-flight work was given its time.
func (c Config) reserve() time.Duration { return min(c.DrainTimeout/4, 3*time.Second) }

// ErrStopping is what Ready answers from the moment the stop begins. It wraps
// context.Canceled.
var ErrStopping = fmt.Errorf("lifecycle: the service is stopping: %w", context.Canceled)

// Consumers is the message-consuming part (consumer.Consumers).
type Consumers interface {
	// Run consumes until Close; it returns nil after Close, or the failure that
	// ended it.
	Run(ctx context.Context) error
	// Drain refuses new messages and waits until the handlers in flight return
	// or deadline passes; then it abandons those still running and reports so.
	Drain(deadline time.Time) (abandoned bool)
	// Close ends the subscriptions (committing their offsets) and makes Run return.
	Close() error
}

// Forwarder is the outbox relay (outbox.Forwarder).
type Forwarder interface {
	// Run relays until Close (or ctx ends).
	Run(ctx context.Context) error
	// Close stops taking rows and finishes the batch in flight cleanly.
	Close() error
	// Abandon cuts whatever the forwarder still does (its batch rolls back).
	Abandon()
}

// Jobs runs periodic work until its context ends (jobs.Jobs).
type Jobs interface{ Run(ctx context.Context) }

// Parts are what Run runs. Nil parts are skipped.
type Parts struct {
	// HTTP serves on HTTPAddr (host:port) until step 2.
	HTTP     *http.Server
	HTTPAddr string
	// Debug serves on DebugAddr (host:port) until the clients close. It is
	// for operators only (the Go profiler: servicemain.DebugServer) and is
	// closed without a drain.
	Debug     *http.Server
	DebugAddr string
	// Consumers are drained in step 2 and closed in step 3.
	Consumers Consumers
	// Forwarder keeps relaying what the drained work wrote and stops in step 4.
	Forwarder Forwarder
	// Jobs stop in step 1.
	Jobs Jobs
	// Clients close in step 5, in this order (Kafka publishers, then the
	// database pool).
	Clients []io.Closer
}

// Lifecycle runs one service's parts and stops them. Make it with New, take
// Ready for the readiness endpoint, then call Run once.
type Lifecycle struct {
	config   Config
	logger   *slog.Logger
	stopping atomic.Bool
}

// New returns a Lifecycle for config (zero fields take their defaults; validate
// config beforehand, with the service's configuration).
func New(config Config, logger *slog.Logger) *Lifecycle {
	return &Lifecycle{config: config.Defaults(), logger: logger}
}

// Ready wraps check (normally the database's ping) for a readiness endpoint: it
// fails with ErrStopping from the moment the stop begins (before the HTTP server
// closes its listener), and otherwise returns check's result.
func (l *Lifecycle) Ready(check func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if l.stopping.Load() {
			return ErrStopping
		}
		return check(ctx)
	}
}

// Run runs p until ctx ends or a part fails, then stops gracefully, in this
// order:
//
//  1. Ready fails with ErrStopping, the jobs stop, and the HTTP server keeps
//     serving for UnreadyDelay.
//  2. At the same time: the HTTP server closes its listener and lets its
//     in-flight requests finish; the consumers take no new message and let
//     their in-flight handlers finish. Both get until the drain deadline
//     (DrainTimeout minus a reserve); a handler still running then is
//     abandoned (its transaction rolls back, its message is redelivered after
//     the restart, never poisoned).
//  3. The consumers close (committing their offsets).
//  4. The forwarder, which kept relaying what the drained work wrote, closes:
//     it deletes the rows Kafka acknowledged and commits (or, past the
//     deadline, is abandoned: those rows are published again).
//  5. The clients close.
//
// It returns the first failure, or nil after a clean stop; if the stop takes
// longer than DrainTimeout it gives up waiting and returns an error (whatever
// was not committed by then is redelivered or republished after the restart).
// The parts run on a context the stop signal does not cancel: the stop ends
// them one after another. If HTTPAddr or DebugAddr cannot be bound, Run starts nothing,
// closes the clients and returns the error.
func (l *Lifecycle) Run(ctx context.Context, p Parts) error {
	cfg := l.config
	var listener net.Listener
	if p.HTTP != nil {
		var err error
		if listener, err = (&net.ListenConfig{}).Listen(ctx, "tcp", p.HTTPAddr); err != nil {
			return errors.Join(fmt.Errorf("listen on %s: %w", p.HTTPAddr, err), closeAll(p.Clients))
		}
		l.logger.Info("starting", "http", listener.Addr().String())
	}
	var debugListener net.Listener
	if p.Debug != nil {
		var err error
		if debugListener, err = (&net.ListenConfig{}).Listen(ctx, "tcp", p.DebugAddr); err != nil {
			if listener != nil {
				_ = listener.Close()
			}
			return errors.Join(fmt.Errorf("listen on %s: %w", p.DebugAddr, err), closeAll(p.Clients))
		}
		l.logger.Info("starting", "debug", debugListener.Addr().String())
	}
	partsCtx, cancelParts := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelParts()
	fwdDone := make(chan error, 1)
	if p.Forwarder != nil {
		go func() { fwdDone <- p.Forwarder.Run(partsCtx) }()
	}
	consDone := make(chan error, 1)
	if p.Consumers != nil {
		go func() { consDone <- p.Consumers.Run(partsCtx) }()
	}
	jobsCtx, stopJobs := context.WithCancel(ctx)
	defer stopJobs()
	if p.Jobs != nil {
		go p.Jobs.Run(jobsCtx)
	}
	httpDone := make(chan error, 1)
	if p.HTTP != nil {
		go func() { httpDone <- p.HTTP.Serve(listener) }()
	}
	debugDone := make(chan error, 1)
	if p.Debug != nil {
		go func() { debugDone <- p.Debug.Serve(debugListener) }()
	}

	var failure error
	select {
	case <-ctx.Done():
	case err := <-fwdDone:
		failure = errors.Join(errors.New("the forwarder stopped"), err)
		fwdDone <- nil
	case err := <-consDone:
		failure = errors.Join(errors.New("the consumers stopped"), err)
		consDone <- nil
	case err := <-httpDone:
		failure = fmt.Errorf("http server: %w", err)
		httpDone <- http.ErrServerClosed
	}

	// 1. Not ready any more.
	start := time.Now()
	deadline := start.Add(cfg.DrainTimeout)
	workDeadline := deadline.Add(-cfg.reserve())
	l.stopping.Store(true)
	stopJobs()
	l.logger.Info("stopping", "drain_timeout", cfg.DrainTimeout, "unready_delay", cfg.UnreadyDelay, "cause", failure)
	if failure == nil && cfg.UnreadyDelay > 0 {
		time.Sleep(cfg.UnreadyDelay)
	}
	// 2. Drain HTTP and the consumers.
	errs := []error{failure}
	var wg sync.WaitGroup
	if p.HTTP != nil {
		wg.Add(1)
		//nolint:gosec // G118: ctx has ended by now; the drain has a deadline of its own
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithDeadline(context.Background(), workDeadline)
			defer cancel()
			if err := p.HTTP.Shutdown(sctx); err != nil {
				_ = p.HTTP.Close()
				l.logger.Warn("stop: HTTP requests still running at the drain deadline were cut", "err", err)
			}
		}()
	}
	if p.Consumers != nil && p.Consumers.Drain(workDeadline) {
		l.logger.Warn("stop: the drain time is up; in-flight messages abandoned (rolled back, not acknowledged, delivered again after the restart)")
	}
	wg.Wait()
	// 3. Close the consumers.
	if p.Consumers != nil {
		go func() {
			if err := p.Consumers.Close(); err != nil {
				l.logger.Warn("stop: closing the consumers", "err", err)
			}
		}()
		var consErr error
		if !waitUntil(consDone, deadline, &consErr) {
			errs = append(errs, errors.New("stop: the consumers did not close within the drain timeout"))
		} else if consErr != nil {
			l.logger.Warn("stop: the consumers ended with", "err", consErr)
		}
	}
	// 4. Stop the forwarder: it finishes or abandons its batch cleanly.
	if p.Forwarder != nil {
		go func() {
			if err := p.Forwarder.Close(); err != nil {
				l.logger.Warn("stop: closing the forwarder", "err", err)
			}
		}()
		var fwdErr error
		if !waitUntil(fwdDone, deadline, &fwdErr) {
			errs = append(errs, errors.New("stop: the forwarder did not stop within the drain timeout"))
		}
		p.Forwarder.Abandon() // whatever still runs past this point is cut
	}
	cancelParts()
	if p.HTTP != nil {
		var httpErr error
		if waitUntil(httpDone, deadline, &httpErr) && !errors.Is(httpErr, http.ErrServerClosed) {
			errs = append(errs, httpErr)
		}
	}
	if p.Debug != nil {
		_ = p.Debug.Close()
		var debugErr error
		waitUntil(debugDone, deadline, &debugErr)
	}
	// 5. Close the clients.
	closed := make(chan error, 1)
	go func() { closed <- closeAll(p.Clients) }()
	var closeErr error
	if !waitUntil(closed, deadline, &closeErr) {
		closeErr = errors.New("stop: the clients did not close within the drain timeout")
	}
	err := errors.Join(append(errs, closeErr)...)
	l.logger.Info("stopped", "took", time.Since(start).Round(time.Millisecond).String(), "err", err)
	return err
}

// closeAll closes cs in order and returns every failure.
func closeAll(cs []io.Closer) error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// waitUntil waits for ch until deadline and reports whether it got a value,
// which it stores in *got.
func waitUntil[T any](ch <-chan T, deadline time.Time, got *T) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case v := <-ch:
		*got = v
		return true
	case <-t.C:
		return false
	}
}
