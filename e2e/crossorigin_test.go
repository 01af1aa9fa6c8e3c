package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/onceflow/onceflow/e2e/harness"
)

// attackPage is what any web page can do without a preflight, against the
// order API at %[1]s: place an order for a customer with a text/plain fetch,
// and cancel order %[2]s with an HTML form posted into a hidden frame. It sets
// window.attackDone once both were answered.
const attackPage = `<!doctype html>
<title>a page of another site</title>
<iframe name="sink" hidden></iframe>
<form id="cancel" method="POST" action="%[1]s/orders/%[2]s/cancel" target="sink"><input name="why" value="because"></form>
<script>
let formSent = false, formDone = false, fetchDone = false;
const finish = () => { window.attackDone = formDone && fetchDone; };
document.querySelector("iframe").addEventListener("load", () => { if (formSent) { formDone = true; finish(); } });
fetch("%[1]s/orders", {method: "POST", mode: "no-cors",
  body: JSON.stringify({customer_id: "rich", amount_cents: 1250, currency: "EUR"})})
  .catch(() => {}).finally(() => { fetchDone = true; finish(); });
formSent = true;
document.getElementById("cancel").submit();
</script>`

// TestWebPageOfAnotherOriginCannotOrder (issue 24): a page of another origin,
// opened in a real Chromium, places an order for a customer with a text/plain
// fetch and cancels the customer's order with an HTML form, both requests a
// browser sends to another origin without asking. A proxy in front of the
// order API witnesses that both reached it; neither took effect: the customer
// still has exactly its one order, CONFIRMED, charged once.
func TestWebPageOfAnotherOriginCannotOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	bin := chromium(t)
	s := newStack(t, harness.StackConfig{}, harness.Account{CustomerID: "rich", BalanceCents: 1_000_000, Currency: "EUR"})
	id := place(t, s, "rich", 1250, "EUR").ID
	if o := terminal(t, s, id)[id]; o.Status != "CONFIRMED" {
		t.Fatalf("order %s is %s, want CONFIRMED before the attack", id, o.Status)
	}
	witness, err := harness.StartClientProxy(s.Orders[0].HTTPAddr, harness.CutPolicy{}) // cuts nothing, counts
	if err != nil {
		t.Fatal(err)
	}
	defer witness.Close()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, attackPage, "http://"+witness.Addr, id)
	}))
	defer page.Close()
	_, port, _ := net.SplitHostPort(page.Listener.Addr().String())

	// The page is on localhost, the API on 127.0.0.1: two sites for the browser.
	ctx := browserFor(t, bin)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://localhost:"+port+"/")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void]("window.attackDone === true",
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("the page's requests were not answered: %v", err)
	}
	if seen, _, _ := witness.Stats(); seen != 2 {
		t.Fatalf("the order API received %d of the page's 2 requests", seen)
	}

	// An order placed or cancelled is in the database when the answer is sent.
	var list struct {
		Orders []harness.OrderView `json:"orders"`
	}
	if status, err := s.Call(ctxFor(t, 10*time.Second), s.Orders[0], http.MethodGet, "/orders?customer_id=rich", "", &list); err != nil || status != http.StatusOK {
		t.Fatalf("GET /orders?customer_id=rich: %d %v", status, err)
	}
	if len(list.Orders) != 1 || list.Orders[0].ID != id || list.Orders[0].Status != "CONFIRMED" {
		t.Errorf("rich's orders after the page ran: %+v, want only %s, CONFIRMED", list.Orders, id)
	}
	if b := balance(t, s, "rich"); b != 1_000_000-1250 {
		t.Errorf("rich's balance = %d, want %d (one charge, no refund)", b, 1_000_000-1250)
	}
}
