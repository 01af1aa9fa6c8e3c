package lifecycle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		ok   bool
	}{
		{"defaults", Config{}.Defaults(), true},
		{"drain too short", Config{DrainTimeout: 500e6}, false},
		{"unready delay half the drain", Config{DrainTimeout: 10e9, UnreadyDelay: 5e9}, false},
		{"negative unready delay", Config{DrainTimeout: 10e9, UnreadyDelay: -1}, false},
	}
	for _, tt := range tests {
		if err := tt.c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// steps records what the parts were asked to do, in order.
type steps struct {
	mu  sync.Mutex
	log []string
}

func (s *steps) add(step string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, step)
}

func (s *steps) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// fakeConsumers runs until Close.
type fakeConsumers struct {
	s      *steps
	closed chan struct{}
	ready  func(context.Context) error
}

func (f *fakeConsumers) Run(ctx context.Context) error {
	<-f.closed
	f.s.add("consumers returned")
	return nil
}
func (f *fakeConsumers) Drain(time.Time) bool {
	if f.ready(context.Background()) == nil {
		f.s.add("drain while still ready")
	}
	f.s.add("consumers drained")
	return false
}
func (f *fakeConsumers) Close() error { f.s.add("consumers closed"); close(f.closed); return nil }

// fakeForwarder runs until Close.
type fakeForwarder struct {
	s      *steps
	closed chan struct{}
}

func (f *fakeForwarder) Run(ctx context.Context) error {
	<-f.closed
	f.s.add("forwarder returned")
	return nil
}
func (f *fakeForwarder) Close() error { f.s.add("forwarder closed"); close(f.closed); return nil }
func (f *fakeForwarder) Abandon()     { f.s.add("forwarder abandoned") }

type fakeJobs struct{ s *steps }

func (f fakeJobs) Run(ctx context.Context) { <-ctx.Done(); f.s.add("jobs stopped") }

type closer struct {
	s    *steps
	name string
}

func (c closer) Close() error { c.s.add(c.name + " closed"); return nil }

// TestStopOrder: the stop runs ADR 24's steps in order: not ready, consumers
// drained, consumers closed, forwarder closed (and abandoned once stopped),
// then the clients in the order given.
func TestStopOrder(t *testing.T) {
	s := &steps{}
	l := New(Config{DrainTimeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	ready := l.Ready(func(context.Context) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.Run(ctx, Parts{
			HTTP:      &http.Server{Handler: http.NotFoundHandler()},
			HTTPAddr:  "127.0.0.1:0",
			Consumers: &fakeConsumers{s: s, closed: make(chan struct{}), ready: ready},
			Forwarder: &fakeForwarder{s: s, closed: make(chan struct{})},
			Jobs:      fakeJobs{s: s},
			Clients:   []io.Closer{closer{s, "publisher"}, closer{s, "db"}},
		})
	}()
	if err := ready(context.Background()); err != nil {
		t.Fatalf("Ready before the stop = %v, want nil", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after a clean stop", err)
	}
	if err := ready(context.Background()); !errors.Is(err, ErrStopping) {
		t.Fatalf("Ready after the stop = %v, want ErrStopping", err)
	}
	got := slices.DeleteFunc(s.list(), func(step string) bool { return step == "jobs stopped" })
	want := []string{"consumers drained", "consumers closed", "consumers returned",
		"forwarder closed", "forwarder returned", "forwarder abandoned", "publisher closed", "db closed"}
	if !slices.Equal(got, want) {
		t.Fatalf("stop steps:\n got  %q\n want %q", got, want)
	}
}

// TestFailedPartStops: a part that fails stops the others and Run returns its error.
func TestFailedPartStops(t *testing.T) {
	l := New(Config{DrainTimeout: 2 * time.Second}, slog.New(slog.DiscardHandler))
	boom := errors.New("boom")
	err := l.Run(context.Background(), Parts{Forwarder: failing{boom}})
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the forwarder's failure", err)
	}
}

type failing struct{ err error }

func (f failing) Run(context.Context) error { return f.err }
func (f failing) Close() error              { return nil }
func (f failing) Abandon()                  {}

// TestListenFailureStartsNothing: an address that cannot be bound fails Run at
// once, before any part runs, and the clients are closed.
func TestListenFailureStartsNothing(t *testing.T) {
	s := &steps{}
	l := New(Config{}, slog.New(slog.DiscardHandler))
	err := l.Run(context.Background(), Parts{
		HTTP: &http.Server{}, HTTPAddr: "not an address",
		Forwarder: failing{errors.New("must not run")},
		Clients:   []io.Closer{closer{s, "db"}},
	})
	if err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("Run = %v, want the listen error", err)
	}
	if got := s.list(); !slices.Equal(got, []string{"db closed"}) {
		t.Fatalf("steps = %q, want only the clients closed", got)
	}
}
