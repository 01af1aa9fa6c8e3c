package harness

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// CutPolicy says which requests a ClientProxy cuts, by their arrival number
// (1, 2, 3, ... in the order the proxy receives them, retries included). It is
// a rule, not a chance: with AfterEvery 7 every 7th request is cut.
type CutPolicy struct {
	// AfterEvery: request k with k % AfterEvery == AfterOffset is forwarded, the
	// server's answer read in full, and then the client's connection is closed
	// without a byte of it: the order exists, the client cannot know. 0: never.
	AfterEvery, AfterOffset uint64
	// BeforeEvery: request k with k % BeforeEvery == BeforeOffset is read and the
	// client's connection closed without forwarding it: nothing happened, the
	// client cannot know either. 0: never. Checked before AfterEvery.
	BeforeEvery, BeforeOffset uint64
}

// CutPolicyFromSeed derives a policy from a scenario's seed: a request in every
// 5 to 8 has its answer cut, one in every 9 to 12 is cut before the server
// sees it, at offsets drawn from the seed. The same seed gives the same policy.
func CutPolicyFromSeed(seed uint64) CutPolicy {
	p := CutPolicy{AfterEvery: 5 + seed%4, BeforeEvery: 9 + (seed/4)%4}
	p.AfterOffset = (seed / 16) % p.AfterEvery
	p.BeforeOffset = (seed / 256) % p.BeforeEvery
	return p
}

// ClientProxy is an HTTP proxy between a client (the load generator) and one
// order API that cuts connections by a CutPolicy: the network failures that
// leave a client not knowing whether its POST took effect.
type ClientProxy struct {
	// Addr is where the proxy listens (host:port).
	Addr     string
	upstream string
	policy   CutPolicy
	server   *http.Server
	client   *http.Client

	seen, cutBefore, cutAfter atomic.Uint64
}

// StartClientProxy starts a proxy to the HTTP server at upstream (host:port).
func StartClientProxy(upstream string, policy CutPolicy) (*ClientProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &ClientProxy{
		Addr: l.Addr().String(), upstream: upstream, policy: policy,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	p.server = &http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.server.Serve(l) }()
	return p, nil
}

// Close stops the proxy and closes its connections.
func (p *ClientProxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.client.CloseIdleConnections()
	return p.server.Shutdown(ctx)
}

// Stats returns how many requests the proxy received, cut before forwarding
// and cut after the server answered.
func (p *ClientProxy) Stats() (seen, cutBefore, cutAfter uint64) {
	return p.seen.Load(), p.cutBefore.Load(), p.cutAfter.Load()
}

// ServeHTTP forwards one request, or cuts it by the policy.
func (p *ClientProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k := p.seen.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "proxy: reading the request: "+err.Error(), http.StatusBadGateway)
		return
	}
	if p.policy.BeforeEvery > 0 && k%p.policy.BeforeEvery == p.policy.BeforeOffset {
		p.cutBefore.Add(1)
		cut(w)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := p.client.Do(req)
	if err != nil {
		cut(w) // the upstream did not answer: the client sees a broken connection, as without a proxy
		return
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		cut(w)
		return
	}
	if p.policy.AfterEvery > 0 && k%p.policy.AfterEvery == p.policy.AfterOffset {
		p.cutAfter.Add(1)
		cut(w)
		return
	}
	for name, values := range resp.Header {
		w.Header()[name] = values
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// cut closes the client's connection without an answer.
func cut(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler) // the server closes the connection
}
