package servicemain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// testConfig is a service configuration as the services write theirs.
type testConfig struct {
	Common  `envPrefix:"SVC_"`
	Timeout time.Duration `env:"SVC_TIMEOUT"`
}

// TestMain: the environment fills the embedded Common under the service's
// prefix before Run sees the config, and each failure has its exit code.
func TestMainExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		options  error
		run      error
		want     int
		wantText string
	}{
		{"runs with the environment", map[string]string{"SVC_HTTP_ADDR": "127.0.0.1:1", "SVC_DB_DSN": "u:p@tcp(h:1)/d", "SVC_STOP_DRAIN_TIMEOUT": "7s", "SVC_TIMEOUT": "3s"}, nil, nil, nil, 0, ""},
		{"unreadable variable", map[string]string{"SVC_TIMEOUT": "soon"}, nil, nil, nil, 2, "svc: reading configuration"},
		{"bad test-build options", nil, nil, errors.New("bad switch"), nil, 2, "bad switch"},
		{"service fails", nil, nil, nil, errors.New("db down"), 1, ""},
		{"unknown subcommand", nil, []string{"serve"}, nil, nil, 2, "unknown subcommand"},
		{"openapi prints the document", nil, []string{"openapi"}, nil, nil, 0, ""},
		{"a service's own command", nil, []string{"diagnose", "o-1"}, nil, nil, 0, ""},
		{"a service's own command fails", nil, []string{"diagnose"}, nil, nil, 1, "svc diagnose: which order?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var cfg testConfig
			var seen testConfig
			s := Service[string]{
				Name: "svc", Config: &cfg, Common: &cfg.Common,
				Options: func() ([]string, error) { return []string{"opt"}, tt.options },
				Run: func(ctx context.Context, logger *slog.Logger, opts ...string) error {
					seen = cfg
					return tt.run
				},
				OpenAPI: func() ([]byte, error) { return []byte(`{"openapi":"3.1.0"}`), nil },
				Commands: map[string]func(context.Context, []string, io.Writer) error{
					"diagnose": func(_ context.Context, args []string, out io.Writer) error {
						if len(args) != 1 {
							return errors.New("which order?")
						}
						_, err := fmt.Fprint(out, "diagnosed "+args[0])
						return err
					},
				},
			}
			var stdout, stderr bytes.Buffer
			if got := s.main(tt.args, &stdout, &stderr); got != tt.want {
				t.Fatalf("exit code = %d, want %d (stderr %q)", got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantText) {
				t.Fatalf("stderr = %q, want it to mention %q", stderr.String(), tt.wantText)
			}
			if tt.name == "openapi prints the document" && stdout.String() != "{\n  \"openapi\": \"3.1.0\"\n}\n" {
				t.Fatalf("stdout = %q, want the document", stdout.String())
			}
			if tt.name == "a service's own command" && stdout.String() != "diagnosed o-1" {
				t.Fatalf("stdout = %q, want the command's output", stdout.String())
			}
			if tt.name == "runs with the environment" {
				if seen.HTTPAddr != "127.0.0.1:1" || seen.Messaging.DB.DSN == "" || seen.Stop.DrainTimeout != 7*time.Second || seen.Timeout != 3*time.Second {
					t.Fatalf("Run saw %+v, want the environment's values", seen)
				}
			}
		})
	}
}

func TestCommonValidateNamesThePrefix(t *testing.T) {
	c := Common{HTTPAddr: "8080"}
	c.Messaging.DB.DSN = "u:p@tcp(h:1)/d"
	c.Messaging.ConsumerGroup, c.Messaging.PoisonTopic = "g", "p"
	err := c.Validate("SVC_")
	if err == nil || !strings.Contains(err.Error(), "SVC_HTTP_ADDR") {
		t.Fatalf("Validate = %v, want an error naming SVC_HTTP_ADDR", err)
	}
	c.HTTPAddr, c.DebugAddr = "127.0.0.1:1", "6060"
	if err := c.Validate("SVC_"); err == nil || !strings.Contains(err.Error(), "SVC_DEBUG_ADDR") {
		t.Fatalf("Validate = %v, want an error naming SVC_DEBUG_ADDR", err)
	}
	c.DebugAddr = "127.0.0.1:6060"
	if err := c.Validate("SVC_"); err != nil {
		t.Fatalf("Validate of a valid config = %v", err)
	}
}

func TestLocalAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		":8080": "127.0.0.1:8080", "0.0.0.0:8080": "127.0.0.1:8080", "[::]:8080": "127.0.0.1:8080",
		"127.0.0.1:9": "127.0.0.1:9", "order:8080": "order:8080",
	} {
		if got := LocalAddr(in); got != want {
			t.Errorf("LocalAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
