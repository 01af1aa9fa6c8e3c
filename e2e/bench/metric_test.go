package main

import "testing"

// TestBenchMetric: the consumer phase reads BenchmarkConsumer's events/s from the
// test binary's output, whatever else the output holds, and fails rather than
// reading 0 when the line or the unit is missing.
func TestBenchMetric(t *testing.T) {
	t.Parallel()
	out := "goos: linux\ngoarch: amd64\npkg: github.com/onceflow/onceflow/services/payment/internal/service\n" +
		"BenchmarkConsumer-2   \t       1\t3402119000 ns/op\t       904.5 events/s\nPASS\n"
	for _, c := range []struct {
		name, out string
		want      float64
		fails     bool
	}{
		{"result line", out, 904.5, false},
		{"no GOMAXPROCS suffix", "BenchmarkConsumer 1 100 ns/op 12 events/s\n", 12, false},
		{"other benchmark only", "BenchmarkConsumerX-2 1 100 ns/op 12 events/s\n", 0, true},
		{"no metric", "BenchmarkConsumer-2 1 100 ns/op\n", 0, true},
		{"failed run", "--- FAIL: BenchmarkConsumer\n    processed 12 of 3000 events\nFAIL\n", 0, true},
	} {
		got, err := benchMetric([]byte(c.out), "BenchmarkConsumer", "events/s")
		if (err != nil) != c.fails || got != c.want {
			t.Errorf("%s: got %v, %v; want %v (fails %v)", c.name, got, err, c.want, c.fails)
		}
	}
}
