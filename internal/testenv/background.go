package testenv

import (
	"context"
	"sync"
	"testing"
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
