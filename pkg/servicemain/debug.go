package servicemain

import (
	"net/http"
	"net/http/pprof"
	"time"
)

// DebugServer returns the server of the Go profiler's endpoints
// (/debug/pprof/..., e.g. `go tool pprof http://ADDR/debug/pprof/profile?seconds=10`)
// for DebugAddr, or nil when DebugAddr is empty. Its handlers are registered on
// a mux of its own, never on http.DefaultServeMux or the API.
func (c Common) DebugServer() *http.Server {
	if c.DebugAddr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or trace answers after its ?seconds=.
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}
