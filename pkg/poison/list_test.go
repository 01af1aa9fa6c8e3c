package poison_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/poison/poisoncli"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// page is the answer of a listing or of a replay of a page.
type page struct {
	Messages   []poison.Entry `json:"messages"`
	Replayed   []poison.Entry `json:"replayed"`
	NextCursor *int64         `json:"next_cursor"`
}

// walk calls method path, then again with each answer's next_cursor until
// there is none, and returns the offsets of each page, e.g. "[9 8] [7]".
func walk(t *testing.T, call func(method, path string, out any) int, method, path string) string {
	t.Helper()
	var pages []string
	for cursor := ""; len(pages) < 20; {
		var p page
		if code := call(method, path+cursor, &p); code != http.StatusOK {
			t.Fatalf("%s %s%s: %d", method, path, cursor, code)
		}
		var offsets []int64
		for _, e := range append(p.Messages, p.Replayed...) {
			offsets = append(offsets, e.Offset)
		}
		pages = append(pages, fmt.Sprint(offsets))
		if p.NextCursor == nil {
			return strings.Join(pages, " ")
		}
		cursor = "&cursor=" + strconv.FormatInt(*p.NextCursor, 10)
	}
	t.Fatalf("%s %s: more than 20 pages: %v", method, path, pages)
	return ""
}

// replayPages replays page after page of the bulk replay of query, each
// with the token of its dry run, and returns the offsets of each page, e.g.
// "[0 3 6] [9]".
func replayPages(t *testing.T, call func(method, path string, out any) int, query string) string {
	t.Helper()
	var pages []string
	for cursor := ""; len(pages) < 20; {
		var dry poison.BulkDryRun
		if code := call(http.MethodPost, "/admin/poison/replay/dry-run?"+query+cursor, &dry); code != http.StatusOK {
			t.Fatalf("dry run ?%s%s: %d", query, cursor, code)
		}
		var p page
		if code := call(http.MethodPost, "/admin/poison/replay?"+query+cursor+"&confirm="+dry.Confirmation, &p); code != http.StatusOK {
			t.Fatalf("replay ?%s%s with its dry run's token: %d", query, cursor, code)
		}
		var offsets []int64
		for _, e := range p.Replayed {
			offsets = append(offsets, e.Offset)
		}
		pages = append(pages, fmt.Sprint(offsets))
		if p.NextCursor == nil {
			return strings.Join(pages, " ")
		}
		cursor = "&cursor=" + strconv.FormatInt(*p.NextCursor, 10)
	}
	t.Fatalf("replaying ?%s: more than 20 pages: %v", query, pages)
	return ""
}

// TestListPages: the pages of a poison topic of 10 messages (offsets 0 to 9;
// 0, 3, 6 and 9 with reason code unknown_order), through the admin endpoints
// and the CLI, then replayed a page at a time (TestBulkReplayNeedsItsDryRun
// tests the confirmation).
func TestListPages(t *testing.T) {
	t.Parallel()
	kafka := testenv.Kafka(t)
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	topic := poisonTopic(t, kafka)
	producePoisoned(t, kafka, topic, 10, func(i int) string {
		if i%3 == 0 {
			return "unknown_order"
		}
		return "invalid_event"
	})
	tool := poison.New(kafka, topic, d.Open(t, 10))
	defer tool.Close()
	// The dry runs of the replays below run a handler that changes nothing.
	call := callerOf(t, adminAPI(tool, &poison.DryRunConfig{Handler: func(string) (message.HandlerFunc, bool) {
		return func(*message.Message) ([]*message.Message, error) { return nil, nil }, true
	}}))

	lists := []struct{ name, query, want string }{
		{"newest first", "limit=4", "[9 8 7 6] [5 4 3 2] [1 0]"},
		{"oldest first", "limit=4&order=oldest", "[0 1 2 3] [4 5 6 7] [8 9]"},
		{"by reason, newest first", "limit=3&reason_code=unknown_order", "[9 6 3] [0]"},
		{"by reason, oldest first", "limit=3&order=oldest&reason_code=unknown_order", "[0 3 6] [9]"},
		{"a reason no message has", "reason_code=payment_mismatch", "[]"},
		{"the default page", "", "[9 8 7 6 5 4 3 2 1 0]"},
	}
	for _, tt := range lists {
		t.Run(tt.name, func(t *testing.T) {
			if got := walk(t, call, http.MethodGet, "/admin/poison?"+tt.query); got != tt.want {
				t.Fatalf("pages %s, want %s", got, tt.want)
			}
		})
	}

	// The CLI shows a page and the cursor of the next.
	cfg := poisoncli.Config{DB: sqldb.Config{DSN: d.DSN}, Kafka: kafka, PoisonTopic: topic}
	cli := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := poisoncli.RunCLI(context.Background(), cfg, args, &out); err != nil {
			t.Fatalf("poison %s: %v", strings.Join(args, " "), err)
		}
		return out.String()
	}
	if out := cli("list", "--limit", "2", "--cursor", "7", "--reason-code", "unknown_order"); !strings.Contains(out, "2 message(s) of "+topic+"; the next page: --cursor 2") {
		t.Fatalf("poison list from cursor 7 by reason, 2 at most: want offsets 6 and 3, next cursor 2:\n%s", out)
	}
	if err := poisoncli.RunCLI(context.Background(), cfg, []string{"list", "--limit", "0"}, io.Discard); err == nil {
		t.Fatal("poison list --limit 0 was accepted")
	}

	// Replays go oldest first, a page at a time, each confirmed by its dry
	// run, and skip what was replayed.
	if got := replayPages(t, call, "limit=3&reason_code=unknown_order"); got != "[0 3 6] [9]" {
		t.Fatalf("replaying by reason: pages %s, want [0 3 6] [9]", got)
	}
	if got := replayPages(t, call, ""); got != "[1 2 4 5 7 8]" {
		t.Fatalf("replaying the rest: pages %s, want the 6 not replayed yet", got)
	}
	if got := replayPages(t, call, ""); got != "[]" {
		t.Fatalf("replaying again: pages %s, want nothing left", got)
	}
	var e poison.Entry
	if code := call(http.MethodGet, "/admin/poison/9", &e); code != http.StatusOK || len(e.Replays) != 1 {
		t.Fatalf("GET /9 after the replays: %d, %d replays, want 1", code, len(e.Replays))
	}

	// After a purge, a cursor below the topic's start ends a newest-first
	// listing and starts an oldest-first one at the oldest message left.
	if n, err := tool.PurgeReplayed(context.Background()); err != nil || n != 10 {
		t.Fatalf("purging the replayed messages: %d (%v), want all 10", n, err)
	}
	if got := walk(t, call, http.MethodGet, "/admin/poison?cursor=4"); got != "[]" {
		t.Fatalf("newest first from a purged cursor: %s, want an empty page", got)
	}
	if _, err := tool.Get(context.Background(), 4); !errors.Is(err, poison.ErrGone) {
		t.Fatalf("Get of a purged offset: %v, want ErrGone", err)
	}
}

// TestReadOvertakenByAPurge: a read that a purge overtakes (Kafka answers the
// next fetch with OFFSET_OUT_OF_RANGE, and sarama closes the partition
// consumer) ends with ErrGone; it neither panics nor hangs.
func TestReadOvertakenByAPurge(t *testing.T) {
	t.Parallel()
	const records = 20_000 // far more than sarama fetches ahead (1 MB)
	tool, _ := newTool(t, records)
	ctx := context.Background()
	read := 0
	err := tool.ReadRange(ctx, 0, records, func(int64) {
		if read++; read == 1 {
			if _, err := tool.Purge(ctx, records-2); err != nil {
				t.Fatal(err)
			}
		}
	})
	if !errors.Is(err, poison.ErrGone) {
		t.Fatalf("a read overtaken by a purge after %d of %d records: %v, want ErrGone", read, records, err)
	}
	t.Logf("%d records read before: %v", read, err)
}
