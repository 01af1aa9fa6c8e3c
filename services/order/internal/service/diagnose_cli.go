package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/onceflow/onceflow/pkg/servicemain"
)

// DiagnoseUsage describes the "diagnose" subcommand.
const DiagnoseUsage = `usage: order diagnose [--json] <order id>
  asks the running order service (ORDER_HTTP_ADDR, with ORDER_ADMIN_TOKEN) where the
  order is, the one cause that holds it and the command that resolves it`

// Diagnose is the "order diagnose" subcommand: it asks the running service
// at cfg.HTTPAddr for GET /orders/{id}/diagnosis with cfg.AdminToken and
// prints the answer (as it came with --json). It fails on bad arguments, when
// the service does not answer within 10 s, and on any answer but 200.
func Diagnose(ctx context.Context, cfg Config, args []string, out io.Writer) error {
	raw := len(args) == 2 && args[0] == "--json"
	if raw {
		args = args[1:]
	}
	if len(args) != 1 || args[0] == "" {
		return errors.New(DiagnoseUsage)
	}
	body, err := adminGet(ctx, cfg, "/orders/"+url.PathEscape(args[0])+"/diagnosis")
	if err != nil {
		return err
	}
	if raw {
		_, err := out.Write(body)
		return err
	}
	var d struct {
		OrderID, Status, Stage string
		PaymentStatus          string `json:"payment_status"`
		Cause                  *struct{ Code, Service, Detail, Remedy string }
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return fmt.Errorf("the answer is not a diagnosis: %w", err)
	}
	fmt.Fprintf(out, "order %s: %s, %s", d.OrderID, d.Status, d.Stage)
	if d.PaymentStatus != "" {
		fmt.Fprintf(out, " (payment %s)", d.PaymentStatus)
	}
	fmt.Fprintln(out)
	if d.Cause == nil {
		fmt.Fprintln(out, "nothing holds it")
		return nil
	}
	fmt.Fprintf(out, "held by:  %s (in the %s service)\n  %s\nresolve:  %s\n", d.Cause.Code, d.Cause.Service, d.Cause.Detail, d.Cause.Remedy)
	return nil
}

// StuckUsage describes the "stuck" subcommand.
const StuckUsage = `usage: order stuck [--older-than-seconds N]
  asks the running order service (ORDER_HTTP_ADDR, with ORDER_ADMIN_TOKEN) for the orders
  not done after N seconds (default 600), grouped by what holds them`

// Stuck is the "order stuck" subcommand: it asks the running service for GET
// /admin/orders/stuck and prints each cause with its orders and the first
// order's remedy.
func Stuck(ctx context.Context, cfg Config, args []string, out io.Writer) error {
	query := ""
	switch {
	case len(args) == 2 && args[0] == "--older-than-seconds":
		query = "?older_than_seconds=" + url.QueryEscape(args[1])
	case len(args) != 0:
		return errors.New(StuckUsage)
	}
	body, err := adminGet(ctx, cfg, "/admin/orders/stuck"+query)
	if err != nil {
		return err
	}
	var list struct {
		Groups []struct {
			Cause  string
			Orders []struct {
				OrderID string `json:"order_id"`
				Status  string
				Cause   *struct{ Remedy string }
			}
		}
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("the answer is not a stuck list: %w", err)
	}
	if len(list.Groups) == 0 {
		fmt.Fprintln(out, "no order is stuck")
	}
	for _, g := range list.Groups {
		fmt.Fprintf(out, "%s: %d order(s)\n", g.Cause, len(g.Orders))
		for _, o := range g.Orders {
			fmt.Fprintf(out, "  %s %s\n", o.OrderID, o.Status)
		}
		if c := g.Orders[0].Cause; c != nil {
			fmt.Fprintf(out, "  resolve (first order): %s\n", c.Remedy)
		}
	}
	return nil
}

// adminGet asks the running service at cfg.HTTPAddr for path with
// cfg.AdminToken (10 s at most) and returns the body of a 200; any other
// answer is an error that quotes it.
func adminGet(ctx context.Context, cfg Config, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+servicemain.LocalAddr(cfg.HTTPAddr)+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the order service answered %s: %s", resp.Status, body)
	}
	return body, nil
}
