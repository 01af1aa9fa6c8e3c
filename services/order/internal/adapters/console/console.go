// Package console is the order service's live console: one page,
// GET /console, whose assets are embedded in the binary, fed by server-sent
// events (GET /console/events, a Snapshot a second) and acting through the
// existing admin endpoints with the admin token the user types in.
//
// The page shows data without a token (the same figures /metrics and the
// order API already expose); every action (poison list, inspect, replay,
// discard) is an admin request that carries "Authorization: Bearer <token>".
// The payment service's admin API is reached through this service
// (/console/payment/admin/poison/...), which forwards the request, token
// included, to the payment service's fixed address and nowhere else; the
// payment service checks the token itself.
package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

//go:embed static
var static embed.FS

// Config configures the console.
type Config struct {
	// Source produces the snapshots (normally a *Scraper).
	Source Source
	// PaymentAdminURL is the payment service's base URL (e.g.
	// http://127.0.0.1:8081); its /admin/poison endpoints are proxied under
	// /console/payment/admin/poison. Empty: the payment actions answer 404.
	PaymentAdminURL string
	// Every is the interval between two events of one stream (default 1 s).
	Every time.Duration
}

// Routes mounts on e:
//
//	GET  /console                            the page (HTML; its assets under /console/static/)
//	GET  /console/events                     text/event-stream: "snapshot" events, one a second
//	ANY  /console/payment/admin/poison[/...] the payment service's admin endpoints, proxied
//
// A stream ends when its request's context ends (the service's request
// timeout, ADR 24, or the stop), and the browser's EventSource reconnects
// after the "retry" the stream announced: a stream therefore never holds up a
// graceful stop for longer than one request. The proxy answers 502 when the
// payment service does not answer. Routes fails if PaymentAdminURL is not an
// http(s) URL.
func Routes(e *echo.Echo, cfg Config, logger *slog.Logger) error {
	if cfg.Every <= 0 {
		cfg.Every = defaultSnapshotEvery
	}
	assets, err := fs.Sub(static, "static")
	if err != nil {
		return err
	}
	page, err := fs.ReadFile(assets, "index.html")
	if err != nil {
		return err
	}
	e.GET("/console", func(c echo.Context) error {
		setPageHeaders(c)
		return c.HTMLBlob(http.StatusOK, page)
	})
	e.GET("/console/", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/console") })
	e.GET("/console/static/*", func(c echo.Context) error {
		name := c.Param("*")
		if !fs.ValidPath(name) || name == "." || name == "index.html" {
			return echo.ErrNotFound
		}
		setPageHeaders(c)
		http.ServeFileFS(c.Response(), c.Request(), assets, name)
		return nil
	})
	e.GET("/console/events", func(c echo.Context) error { return stream(c, cfg) })
	proxy, err := paymentProxy(cfg.PaymentAdminURL, logger)
	if err != nil {
		return err
	}
	e.Any("/console/payment/admin/poison", proxy)
	e.Any("/console/payment/admin/poison/*", proxy)
	return nil
}

// setPageHeaders keeps the page to its own origin's scripts and styles, and
// out of frames.
func setPageHeaders(c echo.Context) {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
}

// stream writes one snapshot event now and one every cfg.Every until the
// request's context ends.
func stream(c echo.Context, cfg Config) error {
	ctx := c.Request().Context()
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The browser reconnects this soon after a stream ends.
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", cfg.Every.Milliseconds()); err != nil {
		return nil
	}
	w.Flush()
	tick := time.NewTicker(cfg.Every)
	defer tick.Stop()
	for {
		snap := cfg.Source.Snapshot(ctx)
		data, err := json.Marshal(snap)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", data); err != nil {
			return nil // the browser went away
		}
		w.Flush()
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// paymentProxy forwards /console/payment/admin/poison... to base +
// /admin/poison... with the method, query, body and Authorization header of
// the request; nothing else of the request travels (no cookies).
func paymentProxy(base string, logger *slog.Logger) (echo.HandlerFunc, error) {
	if base == "" {
		return func(echo.Context) error {
			return echo.NewHTTPError(http.StatusNotFound, "the console has no payment service address")
		}, nil
	}
	target, err := url.Parse(base)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, fmt.Errorf("console payment admin URL %q: want http(s)://host:port", base)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			rest := strings.TrimPrefix(r.In.URL.Path, "/console/payment")
			r.Out.URL.Scheme, r.Out.URL.Host = target.Scheme, target.Host
			r.Out.URL.Path, r.Out.URL.RawPath = strings.TrimSuffix(target.Path, "/")+rest, ""
			r.Out.Host = target.Host
			auth := r.In.Header.Get(echo.HeaderAuthorization)
			ct := r.In.Header.Get(echo.HeaderContentType)
			r.Out.Header = http.Header{}
			if auth != "" {
				r.Out.Header.Set(echo.HeaderAuthorization, auth)
			}
			if ct != "" {
				r.Out.Header.Set(echo.HeaderContentType, ct)
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			logger.Warn("console: payment service did not answer", "error", err)
			w.Header().Set(echo.HeaderContentType, "application/problem+json")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte(`{"type":"about:blank","title":"Bad Gateway","status":502,"detail":"the payment service did not answer"}`))
		},
	}
	return func(c echo.Context) error {
		if strings.Contains(c.Request().URL.Path, "..") {
			return echo.NewHTTPError(http.StatusBadRequest, "invalid path")
		}
		rp.ServeHTTP(c.Response(), c.Request())
		return nil
	}, nil
}

// ValidURL reports whether u is empty (no payment service) or an http(s) URL
// with a host.
func ValidURL(u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("%q: want http(s)://host:port", u)
	}
	return nil
}

// JoinURL is base with path appended ("" when base is empty).
func JoinURL(base, path string) string {
	if base == "" {
		return ""
	}
	return strings.TrimSuffix(base, "/") + path
}
