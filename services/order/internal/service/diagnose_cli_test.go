package service

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDiagnoseAndStuckCommands: the commands ask the running service with
// the admin token and print its answers for people; a refusal is an error
// that quotes it.
func TestDiagnoseAndStuckCommands(t *testing.T) {
	t.Parallel()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			http.Error(w, `{"status":401}`, http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/orders/o-1/diagnosis":
			_, _ = w.Write([]byte(`{"order_id":"o-1","status":"PENDING","stage":"awaiting_payment","version":1,
				"cause":{"code":"key_parked","service":"payment","detail":"parked","remedy":"payment poison keys replay o-1"}}`))
		case "/admin/orders/stuck":
			_, _ = w.Write([]byte(`{"older_than_seconds":60,"groups":[{"cause":"key_parked","orders":[{"order_id":"o-1",
				"status":"PENDING","stage":"awaiting_payment","version":1,"cause":{"code":"key_parked","service":"payment",
				"detail":"parked","remedy":"payment poison keys replay o-1"}}]}]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer api.Close()
	cfg := DefaultConfig()
	cfg.HTTPAddr = strings.TrimPrefix(api.URL, "http://")
	cfg.AdminToken = "secret"
	cases := []struct {
		name  string
		run   func(context.Context, Config, []string, io.Writer) error
		args  []string
		token string
		want  string
	}{
		{"diagnose", Diagnose, []string{"o-1"}, "secret", "held by:  key_parked (in the payment service)\n  parked\nresolve:  payment poison keys replay o-1"},
		{"stuck", Stuck, []string{"--older-than-seconds", "60"}, "secret", "key_parked: 1 order(s)\n  o-1 PENDING\n  resolve (first order): payment poison keys replay o-1"},
		{"refused", Diagnose, []string{"o-1"}, "wrong", "answered 401"},
		{"no order", Diagnose, nil, "secret", "usage: order diagnose"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := cfg
			cfg.AdminToken = c.token
			var out bytes.Buffer
			err := c.run(context.Background(), cfg, c.args, &out)
			got := out.String()
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, c.want) {
				t.Fatalf("got %q (err %v), want it to contain %q", got, err, c.want)
			}
		})
	}
}
