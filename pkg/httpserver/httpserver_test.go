package httpserver

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"negative idle timeout", func(c *Config) { c.IdleTimeout = -time.Second }, "must be positive"},
		{"header timeout above read timeout", func(c *Config) { c.ReadHeaderTimeout = 11 * time.Second }, "read header timeout"},
		{"header limit too small", func(c *Config) { c.MaxHeaderBytes = 4096 }, "max header bytes"},
		{"header limit too large", func(c *Config) { c.MaxHeaderBytes = 2 << 20 }, "max header bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{}.Defaults()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// TestServerHeaderLimitIsTheConfiguredOne: net/http reads 4 KiB beyond
// http.Server.MaxHeaderBytes, so the server gets the configured value minus that.
func TestServerHeaderLimitIsTheConfiguredOne(t *testing.T) {
	t.Parallel()
	s := Config{}.Server(nil)
	if got, want := s.MaxHeaderBytes+bufioSlack, 16<<10; got != want {
		t.Fatalf("effective header limit = %d, want %d", got, want)
	}
	if s.ReadTimeout == 0 || s.WriteTimeout == 0 || s.IdleTimeout == 0 || s.ReadHeaderTimeout == 0 {
		t.Fatalf("a timeout is unset: %+v", s)
	}
}
