package harness

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestClientProxyCutsByRule: the proxy cuts exactly the requests its policy
// names, before or after the server saw them, and forwards the others intact.
func TestClientProxyCutsByRule(t *testing.T) {
	t.Parallel()
	var served atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(r.Header.Get("Idempotency-Key")))
	}))
	defer upstream.Close()
	p, err := StartClientProxy(strings.TrimPrefix(upstream.URL, "http://"),
		CutPolicy{AfterEvery: 5, AfterOffset: 0, BeforeEvery: 7, BeforeOffset: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	var failed []int
	for k := 1; k <= 20; k++ {
		req, _ := http.NewRequest(http.MethodPost, "http://"+p.Addr+"/orders", strings.NewReader("{}"))
		req.Header["idempotency-key"] = []string{"k"} // not canonical: keeps Go's transport from retrying on its own
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			failed = append(failed, k)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("request %d: forwarded answer %d %v", k, resp.StatusCode, resp.Header)
		}
	}
	// cut before: 3, 10, 17; cut after: 5, 15, 20 (10 was cut before).
	if fmt.Sprint(failed) != "[3 5 10 15 17 20]" {
		t.Fatalf("cut requests %v, want [3 5 10 15 17 20]", failed)
	}
	seen, before, after := p.Stats()
	if seen != 20 || before != 3 || after != 3 || served.Load() != 17 {
		t.Fatalf("seen %d, cut before %d, cut after %d, served %d; want 20, 3, 3, 17", seen, before, after, served.Load())
	}
}

func TestCutPolicyFromSeed(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{0, 1, 42, 1 << 40, ^uint64(0)} {
		p := CutPolicyFromSeed(seed)
		if p != CutPolicyFromSeed(seed) || p.AfterEvery < 5 || p.AfterEvery > 8 || p.BeforeEvery < 9 || p.BeforeEvery > 12 ||
			p.AfterOffset >= p.AfterEvery || p.BeforeOffset >= p.BeforeEvery {
			t.Fatalf("seed %d: policy %+v", seed, p)
		}
	}
}
