package testenv

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Background runs run in a goroutine with a context that ends when the
// returned stop is called or, at the latest, when the test ends; stop waits
// for run to return, and an error it returns fails the test, named by what.
// stop may be called more than once.
func Background(t testing.TB, what string, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", what, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// WaitFor polls cond until it holds, and fails the test if it does not within
// limit: tests wait for what they can observe, never for a fixed time.
func WaitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Runner is what RunUntilCleanup runs: a Watermill forwarder or router.
type Runner interface {
	Run(ctx context.Context) error
	Running() chan struct{}
	Close() error
}

// RunUntilCleanup runs r until the test ends, once it is running: then it
// closes r, cancels its context and waits for Run to return.
func RunUntilCleanup(t testing.TB, r Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	<-r.Running()
	t.Cleanup(func() { _ = r.Close(); cancel(); <-done })
}
