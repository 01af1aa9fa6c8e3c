package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Scrape is one scrape of a Prometheus text endpoint: each sample line's
// series ("name{labels}", as written) and its value.
type Scrape map[string]float64

// ScrapeMetrics reads url (a GET /metrics) and parses its text exposition. It
// fails the test if the endpoint does not answer 200 or a line does not parse.
func ScrapeMetrics(t testing.TB, url string) Scrape {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %s: %s", url, resp.Status, body)
	}
	s, err := ParseMetrics(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return s
}

// ParseMetrics parses Prometheus' text format: comment lines are skipped, each
// other line is "series value" (a timestamp after the value is not used by
// client_golang and not accepted).
func ParseMetrics(r io.Reader) (Scrape, error) {
	s := Scrape{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, &strconv.NumError{Func: "ParseMetrics", Num: line, Err: strconv.ErrSyntax}
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, err
		}
		s[line[:i]] = v
	}
	return s, sc.Err()
}

// Sum adds the values of the series of metric name whose labels include every
// label="value" pair of labels (given as "label", "value", ...), and reports
// whether there was any.
func (s Scrape) Sum(name string, labels ...string) (float64, bool) {
	var sum float64
	found := false
	for series, v := range s {
		n, rest, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(","+rest, ","+labels[i]+"="+strconv.Quote(labels[i+1])) {
				ok = false
				break
			}
		}
		if ok {
			sum, found = sum+v, true
		}
	}
	return sum, found
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago,
// for a service under test to listen on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitReady polls base+"/readyz" until it answers 200, failing the test after 60 s.
func WaitReady(t testing.TB, base string) {
	t.Helper()
	ready := func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for deadline := time.Now().Add(60 * time.Second); !ready(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s was not ready within 60 s", base)
		}
	}
}

// MetricWant is a metric a test expects: the sum of the series of Name whose
// labels include Labels ("label", "value", ...) exists and is at least Min.
type MetricWant struct {
	Name   string
	Labels []string
	Min    float64
}

// WaitMetrics scrapes url until every want holds and returns that scrape,
// failing the test after 60 s with the wants still missing.
func WaitMetrics(t testing.TB, url string, wants []MetricWant) Scrape {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s := ScrapeMetrics(t, url)
		var missing []string
		for _, w := range wants {
			if v, ok := s.Sum(w.Name, w.Labels...); !ok || v < w.Min {
				missing = append(missing, fmt.Sprintf("%s%v (got %v, present %v, want >= %v)", w.Name, w.Labels, v, ok, w.Min))
			}
		}
		if len(missing) == 0 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics at %s after 60 s, still missing or too low: %s", url, strings.Join(missing, "; "))
		}
	}
}
