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

	"github.com/onceflow/onceflow/services/order/internal/adapters/console"
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
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"http://"+console.LocalAddr(cfg.HTTPAddr)+"/orders/"+url.PathEscape(args[0])+"/diagnosis", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the order service answered %s: %s", resp.Status, body)
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
