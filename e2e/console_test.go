package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/chromedp/chromedp"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
)

// chromium returns the headless browser the console test drives: $CHROMIUM,
// else chromium on the PATH (`make browser` installs Debian's). Missing, the
// test fails under CI=true, like any missing server (testenv.Missing).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "chromium (`make browser` installs it)", exec.ErrNotFound)
	return ""
}

// browserFor starts a fresh headless Chromium (own profile) for the test.
func browserFor(t *testing.T, bin string) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 1000),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 10*time.Minute)
	t.Cleanup(cancelTimeout)
	return ctx
}

// TestConsoleInBrowser drives the order service's console in a real
// headless Chromium against a real stack: orders placed through the API appear
// and turn CONFIRMED; with Kafka killed the outbox backlog rises, and drains
// after Kafka is back; a bad message poisoned by each service is dry-run,
// then replayed from the page (the payment one through the console's proxy). With
// ONCEFLOW_UPDATE_SCREENSHOTS=1 it writes the screenshots of docs/operating.md into docs/img/.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	bin := chromium(t)
	const token = "console-e2e-token"
	s := newStack(t, harness.StackConfig{
		OrderEnv:   []string{"ORDER_ADMIN_TOKEN=" + token},
		PaymentEnv: []string{"PAYMENT_ADMIN_TOKEN=" + token},
	}, harness.Account{CustomerID: "rich", BalanceCents: 1_000_000, Currency: "EUR"})
	ctx := browserFor(t, bin)
	base := "http://" + s.Orders[0].HTTPAddr

	// until polls a JavaScript expression in the page until it is true.
	until := func(what, expr string, timeout time.Duration) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout),
			chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
			text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s: %v\npage text:\n%s", what, err, text)
		}
	}
	shot := func(name, scrollTo string) {
		t.Helper()
		scroll := fmt.Sprintf(`(document.querySelector(%q).scrollIntoView(), true)`, scrollTo)
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](scroll)); err != nil {
			t.Fatalf("scroll: %v", err)
		}
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		dir := filepath.Join(buildDir, "screenshots")
		if os.Getenv("ONCEFLOW_UPDATE_SCREENSHOTS") == "1" {
			dir = filepath.Join(harness.RepoRoot(), "docs", "img")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pending := `Number(document.getElementById("order-outbox-pending").textContent)`

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/console")); err != nil {
		t.Fatal(err)
	}
	until("the event stream is live", `document.getElementById("stream-status").textContent === "live"`, 30*time.Second)
	until("both services shown up", `document.getElementById("payment-status").textContent === "up"`, 30*time.Second)

	// 1. Orders appear and turn CONFIRMED.
	var ids []string
	for range 3 {
		ids = append(ids, place(t, s, "rich", 1250, "EUR").ID)
	}
	for _, id := range ids {
		until("order "+id+" CONFIRMED on the page",
			fmt.Sprintf(`document.querySelector('#recent-orders tr[data-id=%q][data-status="CONFIRMED"]') !== null`, id), 60*time.Second)
	}
	// Its timeline, across both services, from a click on the order.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#recent-orders tr[data-id=%q] td.id`, ids[0])))); err != nil {
		t.Fatal(err)
	}
	until("timeline of "+ids[0], `document.querySelector('#timeline tr[data-type="payment.completed"]') !== null`, 30*time.Second)
	shot("console-orders.png", "header")

	// 2. A bad message for each service, poisoned, then replayed from the page.
	pub := s.Kafka.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	for _, topic := range []string{s.Topics.Orders, s.Topics.Payments} {
		m := message.NewMessage(watermill.NewUUID(), []byte("\x00\x01 not an event"))
		m.Metadata.Set(events.MetadataKey, "console-poison")
		if err := pub.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#token"), token)); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"order", "payment"} {
		rows := `document.querySelectorAll('#poison-` + svc + ` tbody tr')`
		until(svc+" poison queue lists the bad message",
			`(document.getElementById("poison-`+svc+`-load").click(), `+rows+`.length > 0)`, 60*time.Second)
		// Its dry run: the handler would fail again on the same bytes.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#poison-`+svc+` tbody tr[data-replays="0"] .action-dry`))); err != nil {
			t.Fatal(err)
		}
		until(svc+" dry run shown in the detail pane", `document.querySelector('#poison-detail[data-dry-run="`+svc+`:fail"]') !== null &&
			document.getElementById("poison-detail").textContent.includes("a replay would fail again")`, 30*time.Second)
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#poison-`+svc+` tbody tr[data-replays="0"] .action-replay`))); err != nil {
			t.Fatal(err)
		}
		until(svc+" poisoned message replayed from the page",
			`(document.getElementById("poison-`+svc+`-load").click(), [...`+rows+`].some((r) => r.dataset.replays === "1"))`, 60*time.Second)
	}
	shot("console-poison.png", "#poison-order")

	// 3. Kafka down: the order outbox's backlog rises on the page.
	restartKafka := killKafka(t)
	const waiting = 8
	for range waiting {
		ids = append(ids, place(t, s, "rich", 990, "EUR").ID)
	}
	until("the backlog rises", pending+" >= "+strconv.Itoa(waiting), 60*time.Second)
	shot("console-backlog.png", "header")
	// A waiting order's diagnosis (the token is in the page since step 2):
	// its event waits in the order service's outbox.
	waitingID := ids[len(ids)-1]
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#recent-orders tr[data-id=%q] td.id`, waitingID)))); err != nil {
		t.Fatal(err)
	}
	until("diagnosis of "+waitingID+": its event waits in the outbox",
		`document.getElementById("diagnosis").dataset.cause === "outbox_backlog"`, 30*time.Second)

	// 4. Kafka back: the backlog drains, the waiting orders complete.
	restartKafka()
	until("the backlog drains", pending+" === 0", 120*time.Second)
	for _, id := range ids[len(ids)-waiting:] {
		until("order "+id+" CONFIRMED after the outage",
			fmt.Sprintf(`document.querySelector('#recent-orders tr[data-id=%q][data-status="CONFIRMED"]') !== null`, id), 120*time.Second)
	}
}
