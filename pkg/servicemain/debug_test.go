package servicemain

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/lifecycle"
)

// TestDebugServer: with DEBUG_ADDR set, the running service answers the
// profiler's endpoints there (and only there: the address of the API is another
// server); with it empty there is no debug server; the stop closes it.
func TestDebugServer(t *testing.T) {
	if (Common{}).DebugServer() != nil {
		t.Fatal("DebugServer with no DEBUG_ADDR is not nil")
	}
	addr := freeAddr(t)
	c := Common{DebugAddr: addr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- lifecycle.New(lifecycle.Config{DrainTimeout: 5 * time.Second}, slog.New(slog.DiscardHandler)).
			Run(ctx, lifecycle.Parts{Debug: c.DebugServer(), DebugAddr: c.DebugAddr})
	}()
	body := get(t, "http://"+addr+"/debug/pprof/cmdline")
	if !strings.Contains(body, "servicemain.test") {
		t.Fatalf("GET /debug/pprof/cmdline = %q, want the test binary's command line", body)
	}
	if body := get(t, "http://"+addr+"/debug/pprof/"); !strings.Contains(body, "goroutine") {
		t.Fatalf("GET /debug/pprof/ = %q, want the profile index", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want a clean stop", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("the debug server still listens after the stop")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// get returns the body of url, retrying until the server listens (5 s).
func get(t *testing.T, url string) string {
	t.Helper()
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var resp *http.Response
		if resp, err = http.Get(url); err != nil {
			continue
		}
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || rerr != nil {
			t.Fatalf("GET %s = %d %v", url, resp.StatusCode, rerr)
		}
		return string(b)
	}
	t.Fatalf("GET %s: %v", url, err)
	return ""
}
