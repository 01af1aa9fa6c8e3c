package poisoncli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/onceflow/onceflow/pkg/poison"
)

// dryRunAll asks the running service (cfg.ServiceAddr, with cfg.AdminToken)
// for the dry run of q's page of a bulk replay, and prints it, its totals and
// the command that replays exactly that set. The dry run needs the consumers'
// handlers, which only the running service has.
func dryRunAll(ctx context.Context, cfg Config, q poison.Query, out io.Writer) error {
	var d poison.BulkDryRun
	if err := askService(ctx, cfg, "/admin/poison/replay/dry-run?"+pageParams(q).Encode(), &d); err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "OFFSET\tORDER\tREASON\tWOULD\tSTATE\tEVENTS")
	for _, m := range d.Messages {
		would := "succeed"
		if !m.Result.WouldSucceed {
			would = "fail: " + m.Result.ReasonCode
		}
		var types []string
		for _, ev := range m.Result.Events {
			types = append(types, ev.Type)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", m.Offset, m.OrderID, m.ReasonCode, would, orNone(m.StateChange), orNone(strings.Join(types, " ")))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	t := d.Totals
	fmt.Fprintf(out, "dry run of %d message(s) of %s: %d would succeed, %d would fail again%s; %d state(s) would change%s; events: %s\n",
		t.Messages, d.Topic, t.WouldSucceed, t.Messages-t.WouldSucceed, inParens(counts(t.WouldFail)), t.StatesChanged,
		inParens(counts(t.States)), orNone(counts(t.Events)))
	fmt.Fprintln(out, "nothing was replayed or changed")
	if t.Messages > 0 {
		fmt.Fprintf(out, "confirmation token: %s\nto replay exactly these: %s --confirm %s\n", d.Confirmation, replayCommand(cfg, q, nil), d.Confirmation)
	}
	if d.Next != nil {
		fmt.Fprintf(out, "the next page: %s\n", replayCommand(cfg, q, d.Next))
	}
	return nil
}

// replayAll replays q's page if confirm is its dry run's token, and prints
// how many it replayed and how to go on.
func replayAll(ctx context.Context, cfg Config, tool *poison.Tool, q poison.Query, confirm string, out io.Writer) error {
	page, err := tool.ReplayAll(ctx, q, confirm)
	if err == nil || len(page.Entries) > 0 {
		fmt.Fprintf(out, "replayed %d message(s)\n", len(page.Entries))
	}
	if err == nil && page.Next != nil {
		fmt.Fprintf(out, "the next page, dry run first: %s\n", replayCommand(cfg, q, page.Next))
	}
	return err
}

// pageParams is the query of q's page in the admin API.
func pageParams(q poison.Query) url.Values {
	v := url.Values{}
	if q.ReasonCode != "" {
		v.Set("reason_code", q.ReasonCode)
	}
	if q.Cursor != nil {
		v.Set("cursor", strconv.FormatInt(*q.Cursor, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// replayCommand is the command of a bulk replay of q's page, from cursor if
// it is set.
func replayCommand(cfg Config, q poison.Query, cursor *int64) string {
	cmd := []string{"poison", "replay", "--all"}
	if cfg.Service != "" {
		cmd = append([]string{cfg.Service}, cmd...)
	}
	if q.ReasonCode != "" {
		cmd = append(cmd, "--reason-code", q.ReasonCode)
	}
	if cursor == nil {
		cursor = q.Cursor
	}
	if cursor != nil {
		cmd = append(cmd, "--cursor", strconv.FormatInt(*cursor, 10))
	}
	return strings.Join(append(cmd, "--limit", strconv.Itoa(q.Limit)), " ")
}

// counts lists a count by name as "a: 1, b: 2", by name.
func counts(m map[string]int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// inParens is " (s)", or "" for an empty s.
func inParens(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// orNone is s, or "-" for an empty s.
func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// askService POSTs to path of the running service (cfg.ServiceAddr, with
// cfg.AdminToken) and decodes its answer into v: the dry runs need the
// consumers' handlers, which only the running service has.
func askService(ctx context.Context, cfg Config, path string, v any) error {
	if cfg.ServiceAddr == "" {
		return fmt.Errorf("a dry run asks the running service, and its address is not configured")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+cfg.ServiceAddr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the dry run asks the running service: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the service answered the dry run with %s: %s", resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("the answer is not a dry run: %w", err)
	}
	return nil
}
