package poison_test

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/poison"
)

// newTool returns a Tool on a new poison topic holding records records (reason
// code invalid_event) and a migrated database of its own.
func newTool(t *testing.T, records int) (*poison.Tool, string) {
	t.Helper()
	kafka := testenv.Kafka(t)
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	topic := poisonTopic(t, kafka)
	producePoisoned(t, kafka, topic, records, func(int) string { return "invalid_event" })
	tool := poison.New(kafka, topic, d.Open(t, 10))
	t.Cleanup(func() { tool.Close() })
	return tool, topic
}

// TestGoneOffsets: an offset that was purged is a 410 problem, one not written
// yet a 404; what is left still answers.
func TestGoneOffsets(t *testing.T) {
	t.Parallel()
	tool, _ := newTool(t, 10)
	if n, err := tool.Purge(context.Background(), 3); err != nil || n != 4 {
		t.Fatalf("purge up to 3: %d (%v), want 4", n, err)
	}
	call := adminClient(t, tool)
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"get a purged offset", http.MethodGet, "/admin/poison/2", http.StatusGone},
		{"replay a purged offset", http.MethodPost, "/admin/poison/2/replay", http.StatusGone},
		{"get the oldest offset left", http.MethodGet, "/admin/poison/4", http.StatusOK},
		{"get an offset not written yet", http.MethodGet, "/admin/poison/10", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := call(tt.method, tt.path, nil); got != tt.want {
				t.Fatalf("%s %s: %d, want %d", tt.method, tt.path, got, tt.want)
			}
		})
	}
}

// TestPurgeDuringReads: admin calls that run while the poison topic is purged
// under them answer what they read, or a problem that says what happened (404,
// 410, or 503 if Kafka was too slow for the read's bound): never a 500, never
// a panic. Kafka answers a fetch below the purge point with OFFSET_OUT_OF_RANGE,
// and sarama then closes the partition consumer.
func TestPurgeDuringReads(t *testing.T) {
	t.Parallel()
	const records, step = 50_000, 2_000
	tool, _ := newTool(t, records)
	call := adminClient(t, tool) // also checks every answer against the OpenAPI fragment
	last := strconv.Itoa(records - 1)
	reads := []struct{ method, path string }{
		{http.MethodGet, "/admin/poison/" + last},
		{http.MethodPost, "/admin/poison/" + last + "/replay"},
		{http.MethodGet, "/admin/poison?order=oldest&reason_code=unknown_order"},
		{http.MethodGet, "/admin/poison?order=oldest&limit=500"},
	}
	var (
		mu       sync.Mutex
		statuses = map[string]map[int]int{} // path -> status -> count
		wg       sync.WaitGroup
		purged   = make(chan struct{}) // closed after the last purge
	)
	for _, r := range reads {
		statuses[r.path] = map[int]int{}
		wg.Go(func() {
			for {
				code := call(r.method, r.path, nil)
				mu.Lock()
				statuses[r.path][code]++
				mu.Unlock()
				select {
				case <-purged:
					return
				default:
				}
			}
		})
	}
	for upTo := step; upTo < records-1; upTo += step {
		time.Sleep(50 * time.Millisecond) // pacing: several calls see several purges
		if _, err := tool.Purge(context.Background(), int64(upTo)); err != nil {
			t.Errorf("purge up to %d: %v", upTo, err)
		}
	}
	close(purged)
	wg.Wait()
	for path, got := range statuses {
		t.Logf("%s: %v", path, got)
		for code := range got {
			switch code {
			case http.StatusOK, http.StatusNotFound, http.StatusGone, http.StatusServiceUnavailable:
			default:
				t.Errorf("%s answered %d during purges, want 200, 404, 410 or 503", path, code)
			}
		}
	}
}
