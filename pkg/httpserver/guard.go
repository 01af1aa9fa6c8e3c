package httpserver

import (
	_ "embed"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"

	"github.com/onceflow/onceflow/pkg/problem"
)

// OpenAPI is the OpenAPI 3.1 fragment defining the guard's answers
// (#/components/responses/MisdirectedRequest, CrossOriginRequest and
// UnsupportedMediaType), which every service's document lists on its
// operations; each service merges it into its document (apidoc.Build).
//
//go:embed openapi.yaml
var OpenAPI []byte

// DefaultAllowedHosts is AllowedHosts' default: the name `make run` and a
// browser on the same machine use. IP addresses need no entry.
var DefaultAllowedHosts = []string{"localhost"}

// The guard's refusals, as problem types (docs/problems.md).
var (
	misdirectedRequest = problem.Kind{Status: http.StatusMisdirectedRequest, Slug: "misdirected-request",
		Title: "This service does not answer to that host name"}
	crossOriginRequest = problem.Kind{Status: http.StatusForbidden, Slug: "cross-origin-request",
		Title: "A browser sent this request from another site"}
	unsupportedMediaType = problem.Kind{Status: http.StatusUnsupportedMediaType, Slug: "unsupported-media-type",
		Title: "The body must be application/json"}
)

// Guard returns h behind three checks that make requests from a web page on
// another origin harmless. In order, each answering with an RFC 9457
// problem and without calling h:
//
//   - the Host header must name one of AllowedHosts or be an IP address (port
//     ignored), else 421 misdirected-request. This refuses DNS rebinding, where
//     a page's own name is made to resolve to this service, so that the browser
//     treats the service as the page's origin and lets the page read it.
//   - a state-changing request (any method but GET, HEAD and OPTIONS) must not
//     come from a browser page on another origin: net/http's
//     CrossOriginProtection (Sec-Fetch-Site, or Origin against Host), else 403
//     cross-origin-request. Clients that are not browsers send neither header
//     and pass.
//   - a state-changing request with a body, or with a Content-Type, must say
//     Content-Type: application/json (parameters such as charset allowed), else
//     415 unsupported-media-type. A page can send a form or text/plain to
//     another origin without asking first; a JSON body makes the browser ask
//     (a CORS preflight), and this service never answers yes.
func (c Config) Guard(h http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, name := range c.Defaults().AllowedHosts {
		allowed[hostName(name)] = true
	}
	crossOrigin := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name := hostName(r.Host); name != "" && !allowed[name] && !isIP(name) {
			problem.Write(w, r, misdirectedRequest, fmt.Sprintf(
				"the Host %q is not a name this service answers to; if it is yours, add it to the service's *_HTTP_ALLOWED_HOSTS", r.Host))
			return
		}
		if err := crossOrigin.Check(r); err != nil {
			problem.Write(w, r, crossOriginRequest,
				"state-changing requests are taken only from this service's own origin or from clients that are not browsers: "+err.Error())
			return
		}
		if detail := mediaTypeProblem(r); detail != "" {
			problem.Write(w, r, unsupportedMediaType, detail)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// mediaTypeProblem says what is wrong with the Content-Type of a
// state-changing request ("" if nothing is).
func mediaTypeProblem(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return ""
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		if r.ContentLength == 0 {
			return ""
		}
		return "the request has a body but no Content-Type; send it as Content-Type: application/json"
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "the Content-Type is not a valid media type; send application/json"
	}
	if mt != "application/json" {
		return fmt.Sprintf("the Content-Type %s is not accepted; send application/json", mt)
	}
	return ""
}

// hostName is the lower-case name of a Host header or an allow-list entry:
// without port, brackets and a trailing dot.
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	return strings.ToLower(strings.TrimSpace(host))
}

// isIP reports whether name is an IP address. No DNS answer can make a browser
// send one as Host for a page of another origin, so an address is never a
// rebound name.
func isIP(name string) bool {
	_, err := netip.ParseAddr(name)
	return err == nil
}

// hostNameRe is what an allow-list entry may be: a DNS name (underscores
// allowed, as in compose service names), no port, scheme or wildcard.
var hostNameRe = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$`)

// validateAllowedHosts reports every entry that is not a host name.
func validateAllowedHosts(names []string) error {
	var bad []string
	for _, n := range names {
		if !hostNameRe.MatchString(strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))) {
			bad = append(bad, fmt.Sprintf("%q", n))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("http: allowed hosts %s: want host names, without port, scheme or wildcard", strings.Join(bad, ", "))
	}
	return nil
}
