// Package httpserver builds the services' http.Server with the timeouts and
// limits that keep slow and hostile clients from holding it: a client
// that sends its request slowly, never reads the response, or keeps an idle
// connection open is disconnected within a bound, and an oversized header block
// is refused with 431 before it is buffered. Every request passes the guard
// first (Guard), which makes requests from web pages of other
// origins harmless.
package httpserver

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// bufioSlack is what net/http reads beyond http.Server.MaxHeaderBytes before it
// refuses a header block (its internal read limit is MaxHeaderBytes + 4096).
const bufioSlack = 4096

// Config is the HTTP server part of a service's configuration; a service nests
// it as <SERVICE>_HTTP_*, e.g. ORDER_HTTP_READ_TIMEOUT. Zero fields take the
// defaults.
type Config struct {
	// ReadHeaderTimeout bounds reading the request line and headers. Default 5 s.
	ReadHeaderTimeout time.Duration `env:"READ_HEADER_TIMEOUT"`
	// ReadTimeout bounds reading the whole request, headers and body, from the
	// moment the connection is ready for it. A client that sends slower is cut
	// off. Default 10 s.
	ReadTimeout time.Duration `env:"READ_TIMEOUT"`
	// WriteTimeout bounds a request from the end of its headers to the end of
	// writing its response: it covers the handler's work, so it must exceed any
	// request timeout the service applies. Default 15 s.
	WriteTimeout time.Duration `env:"WRITE_TIMEOUT"`
	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request. Default 60 s.
	IdleTimeout time.Duration `env:"IDLE_TIMEOUT"`
	// MaxHeaderBytes is the largest request line plus header block accepted;
	// a larger one gets 431 Request Header Fields Too Large. Default 16384
	// (16 KiB); 8 KiB..1 MiB.
	MaxHeaderBytes int `env:"MAX_HEADER_BYTES"`
	// AllowedHosts are the names the server answers to in the Host header
	// (comma-separated; port ignored, case-insensitive); an IP address is
	// always accepted. A request for another name gets 421 (Guard). Default
	// DefaultAllowedHosts (localhost); a deployment adds the names its clients
	// use, e.g. compose's service names.
	AllowedHosts []string `env:"ALLOWED_HOSTS"`
}

// Defaults returns c with zero fields set to their defaults.
func (c Config) Defaults() Config {
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 5 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 15 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 16 << 10
	}
	if len(c.AllowedHosts) == 0 {
		c.AllowedHosts = DefaultAllowedHosts
	}
	return c
}

// Validate reports every invalid field (call it on Defaults()).
func (c Config) Validate() error {
	var errs []error
	if c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0 {
		errs = append(errs, errors.New("http: read header, read, write and idle timeouts must be positive"))
	}
	if c.ReadHeaderTimeout > c.ReadTimeout {
		errs = append(errs, fmt.Errorf("http: read header timeout %s exceeds the read timeout %s", c.ReadHeaderTimeout, c.ReadTimeout))
	}
	if c.MaxHeaderBytes < 8<<10 || c.MaxHeaderBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("http: max header bytes %d is outside 8192..1048576", c.MaxHeaderBytes))
	}
	return errors.Join(append(errs, validateAllowedHosts(c.AllowedHosts))...)
}

// Server returns an http.Server for h, behind the guard (Guard), with c's
// timeouts and limits (defaults applied; c is assumed valid).
func (c Config) Server(h http.Handler) *http.Server {
	c = c.Defaults()
	return &http.Server{
		Handler:           c.Guard(h),
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes - bufioSlack,
	}
}
