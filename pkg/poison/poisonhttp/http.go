package poisonhttp

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/onceflow/onceflow/pkg/dryrun"
	"github.com/onceflow/onceflow/pkg/poison"
)

// Routes mounts the admin endpoints on g (e.g. e.Group("/admin/poison")):
//
//	GET  "?cursor=&limit=&order=&reason_code="  a page of poisoned messages, newest first by default
//	GET  "/:offset"          one message; 410 if it was purged
//	POST "/:offset/replay"   send it back to the consumer that poisoned it
//	POST "/:offset/dry-run"  what a replay would change (mounted by DryRunRoute)
//	POST "/replay/dry-run?cursor=&limit=&reason_code="  what a replay of a page would change,
//	                         and its confirmation token (mounted by DryRunRoute)
//	POST "/replay?cursor=&limit=&reason_code=&confirm="  replay a page of the messages not
//	                         replayed yet: the page of the dry run whose token confirm is
//	POST "/purge?up_to=N"    delete messages up to offset N (all without up_to)
//	GET  "/parked"           parked outbox rows, in park order
//	GET  "/parked/:id"       one parked row with payload and metadata
//	POST "/parked/:id/dry-run"  what its replay would send, and whether Kafka would take the head now
//	POST "/parked/:id/replay"   replay the head of a key (its later rows follow); 409 if not the head
//	POST "/parked/replay"    replay the head of every key
//	POST "/parked/:id/discard"  give up the head of a key; its next row is released
//	GET  "/keys"             keys parked by park-key consumers, with their heads
//	GET  "/keys/:key"        one key's queue, head first, with payloads (?handler=NAME if ambiguous)
//	POST "/keys/:key/dry-run"  what a release of the key's queue would change (mounted by DryRunRoute)
//	POST "/keys/:key/replay"   202: the running consumers release the key in order
//	POST "/keys/:key/discard"  give up the key's head; the messages behind it are released
//
// Every request needs "Authorization: Bearer <token>"; with an empty token the
// endpoints answer 404, so that an unconfigured service exposes nothing.
func Routes(g *echo.Group, tool *poison.Tool, token string) {
	// The middleware goes on each route, not on the group: Echo's Group.Use
	// adds a catch-all route to the group, which answers 404 where a known
	// path with another method must answer 405 (labstack/echo#1981).
	r := guarded{g: g, mw: append([]echo.MiddlewareFunc{staticFirst}, AdminOnly(token)...)}
	parkedRoutes(r, tool)
	keyRoutes(r, tool)
	r.GET("", func(c echo.Context) error {
		q, err := queryParams(c, true)
		if err != nil {
			return err
		}
		page, err := tool.List(c.Request().Context(), q)
		if err != nil {
			return httpError(err)
		}
		return c.JSON(http.StatusOK, pageBody{Topic: tool.Topic(), Messages: nonNil(page.Entries), Next: page.Next})
	})
	r.GET("/:offset", func(c echo.Context) error {
		off, err := offsetParam(c)
		if err != nil {
			return err
		}
		e, err := tool.Get(c.Request().Context(), off)
		if err != nil {
			return httpError(err)
		}
		return c.JSON(http.StatusOK, e)
	})
	r.POST("/:offset/replay", func(c echo.Context) error {
		off, err := offsetParam(c)
		if err != nil {
			return err
		}
		e, err := tool.Replay(c.Request().Context(), off)
		if err != nil {
			return httpError(err)
		}
		return c.JSON(http.StatusOK, replayedBody{Replayed: []poison.Entry{e}})
	})
	r.POST("/replay", func(c echo.Context) error {
		q, err := queryParams(c, false)
		if err != nil {
			return err
		}
		confirm, err := confirmParam(c)
		if err != nil {
			return err
		}
		page, err := tool.ReplayAll(c.Request().Context(), q, confirm)
		if err != nil {
			return httpError(err)
		}
		return c.JSON(http.StatusOK, replayedBody{Replayed: nonNil(page.Entries), Next: page.Next})
	})
	r.POST("/purge", func(c echo.Context) error {
		upTo := int64(-1)
		if c.QueryParams().Has("up_to") { // present but empty is not "all": ?up_to= must not purge everything
			n, err := strconv.ParseInt(c.QueryParam("up_to"), 10, 64)
			if err != nil || n < 0 {
				return echo.NewHTTPError(http.StatusBadRequest, "up_to must be a non-negative offset")
			}
			upTo = n
		}
		n, err := tool.Purge(c.Request().Context(), upTo)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"purged": n})
	})
}

func offsetParam(c echo.Context) (int64, error) {
	n, err := strconv.ParseInt(c.Param("offset"), 10, 64)
	if err != nil || n < 0 {
		return 0, echo.NewHTTPError(http.StatusBadRequest, "offset must be a non-negative integer")
	}
	return n, nil
}

// pageBody is the answer to a listing.
type pageBody struct {
	Topic    string         `json:"topic"`
	Messages []poison.Entry `json:"messages"`
	Next     *int64         `json:"next_cursor,omitempty"`
}

// replayedBody is the answer to a replay: the message, or a page of them.
type replayedBody struct {
	Replayed []poison.Entry `json:"replayed"`
	Next     *int64         `json:"next_cursor,omitempty"`
}

// queryParams reads the query of a listing (cursor, limit, order,
// reason_code) or of a replay of a page (without order). A parameter that is
// present must be valid: "?cursor=" is a 400, not "from the newest".
func queryParams(c echo.Context, listing bool) (poison.Query, error) {
	params := c.QueryParams()
	q := poison.Query{ReasonCode: params.Get("reason_code")}
	if params.Has("cursor") {
		n, err := strconv.ParseInt(params.Get("cursor"), 10, 64)
		if err != nil || n < 0 {
			return poison.Query{}, echo.NewHTTPError(http.StatusBadRequest, "cursor must be a non-negative offset")
		}
		q.Cursor = &n
	}
	if params.Has("limit") {
		n, err := strconv.Atoi(params.Get("limit"))
		if err != nil || n < 1 || n > poison.MaxLimit {
			return poison.Query{}, echo.NewHTTPError(http.StatusBadRequest, "limit must be between 1 and "+strconv.Itoa(poison.MaxLimit))
		}
		q.Limit = n
	}
	if listing && params.Has("order") {
		q.Order = poison.Order(params.Get("order"))
		if q.Order != poison.NewestFirst && q.Order != poison.OldestFirst {
			return poison.Query{}, echo.NewHTTPError(http.StatusBadRequest, `order must be "newest" or "oldest"`)
		}
	}
	return q, nil
}

// confirmParam reads the confirmation token of a bulk replay: "" when
// absent; present, it must look like one (64 hex digits), else 400.
func confirmParam(c echo.Context) (string, error) {
	params := c.QueryParams()
	if !params.Has("confirm") {
		return "", nil
	}
	token := params.Get("confirm")
	if _, err := hex.DecodeString(token); err != nil || len(token) != 64 || strings.ToLower(token) != token {
		return "", echo.NewHTTPError(http.StatusBadRequest, "confirm must be the confirmation token of a dry run (64 lower-case hex digits)")
	}
	return token, nil
}

// httpError turns the Tool's errors into problems: an offset not there is a
// 404, one purged (also while it was read) a 410, a bulk replay without its
// dry run's token a 428 and with the token of another set a 409, a read that
// Kafka did not serve in time a 503.
func httpError(err error) error {
	switch {
	case errors.Is(err, poison.ErrConfirmationRequired):
		return echo.NewHTTPError(http.StatusPreconditionRequired, err.Error())
	case errors.Is(err, poison.ErrSetChanged):
		return echo.NewHTTPError(http.StatusConflict, err.Error())
	case errors.Is(err, poison.ErrNotFound):
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	case errors.Is(err, poison.ErrGone):
		return echo.NewHTTPError(http.StatusGone, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error()).SetInternal(err)
	}
	return err
}

// DryRunRoute mounts on g (the group of Routes) POST "/:offset/dry-run":
// what a replay of the message would change, in a transaction that is
// rolled back (poison.Tool.DryRun), and POST "/replay/dry-run": the same for
// each message of the page POST "/replay" would replay, with totals and the
// confirmation token that replay needs (poison.Tool.DryRunAll), and POST
// "/keys/:key/dry-run": what a release of a parked key's queue would change,
// head first, in one transaction that is rolled back (poison.Tool.DryRunKey;
// ?handler= as for the key's other endpoints). Each answers 409 if this
// service does not run the consumer that poisoned the message or parked the
// key.
// Same token rules as Routes.
func DryRunRoute(g *echo.Group, tool *poison.Tool, token string, cfg poison.DryRunConfig) {
	r := guarded{g: g, mw: append([]echo.MiddlewareFunc{staticFirst}, AdminOnly(token)...)}
	r.POST("/replay/dry-run", func(c echo.Context) error {
		q, err := queryParams(c, false)
		if err != nil {
			return err
		}
		summary, err := tool.DryRunAll(c.Request().Context(), q, cfg)
		if errors.Is(err, poison.ErrNoConsumer) {
			return echo.NewHTTPError(http.StatusConflict, err.Error())
		}
		if err != nil {
			return httpError(err)
		}
		return c.JSON(http.StatusOK, summary)
	})
	r.POST("/:offset/dry-run", func(c echo.Context) error {
		off, err := offsetParam(c)
		if err != nil {
			return err
		}
		e, result, err := tool.DryRun(c.Request().Context(), off, cfg)
		if errors.Is(err, poison.ErrNoConsumer) {
			return echo.NewHTTPError(http.StatusConflict, err.Error())
		}
		if err != nil {
			return httpError(err)
		}
		return c.JSON(http.StatusOK, dryRunBody{Message: e, Result: result})
	})
	r.POST("/keys/:key/dry-run", func(c echo.Context) error {
		k, err := keyParam(c)
		if err != nil {
			return err
		}
		d, err := tool.DryRunKey(c.Request().Context(), k, c.QueryParam("handler"), cfg)
		if errors.Is(err, poison.ErrNoConsumer) {
			return echo.NewHTTPError(http.StatusConflict, err.Error())
		}
		if err != nil {
			return adminErr(err)
		}
		return c.JSON(http.StatusOK, d)
	})
}

// dryRunBody is the answer to a dry run.
type dryRunBody struct {
	Message poison.Entry  `json:"message"`
	Result  dryrun.Result `json:"result"`
}

// AdminOnly is the middleware of every admin route, for a service's other
// admin routes too: with an empty token the route answers 404 (an
// unconfigured service exposes nothing), without "Authorization: Bearer
// <token>" 401.
func AdminOnly(token string) []echo.MiddlewareFunc {
	enabled := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if token == "" {
				return echo.NewHTTPError(http.StatusNotFound, "admin endpoints are disabled: no admin token configured")
			}
			return next(c)
		}
	}
	auth := middleware.KeyAuthWithConfig(middleware.KeyAuthConfig{
		Validator: func(key string, _ echo.Context) (bool, error) {
			return subtle.ConstantTimeCompare([]byte(key), []byte(token)) == 1, nil
		},
		ErrorHandler: func(error, echo.Context) error {
			return echo.NewHTTPError(http.StatusUnauthorized, "a valid admin token is required (Authorization: Bearer <token>)")
		},
	})
	return []echo.MiddlewareFunc{enabled, auth}
}

// staticFirst answers 405 when a parameter route caught a path that is a
// static route of another method: "GET /admin/poison/replay" reaches
// "GET /:offset" with offset "replay", but the resource is POST /replay, so the
// answer is 405 with its Allow header, not a 400 about an offset.
func staticFirst(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !strings.Contains(c.Path(), ":") {
			return next(c)
		}
		var allow []string
		for _, route := range c.Echo().Routes() {
			if route.Path == c.Request().URL.Path && route.Method != c.Request().Method {
				allow = append(allow, route.Method)
			}
		}
		if len(allow) == 0 {
			return next(c)
		}
		c.Response().Header().Set(echo.HeaderAllow, strings.Join(allow, ", "))
		return echo.ErrMethodNotAllowed
	}
}

// router is what the endpoint groups register their routes on: guarded.
type router interface {
	GET(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route
	POST(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route
	Add(method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route
}

// guarded registers routes on g with mw in front of each route's own middleware.
type guarded struct {
	g  *echo.Group
	mw []echo.MiddlewareFunc
}

// Add registers a route behind the guard's middleware.
func (r guarded) Add(method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.g.Add(method, path, h, append(append([]echo.MiddlewareFunc{}, r.mw...), m...)...)
}

// GET registers a GET route behind the guard's middleware.
func (r guarded) GET(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.Add(http.MethodGet, path, h, m...)
}

// POST registers a POST route behind the guard's middleware.
func (r guarded) POST(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.Add(http.MethodPost, path, h, m...)
}

func nonNil(l []poison.Entry) []poison.Entry {
	if l == nil {
		return []poison.Entry{}
	}
	return l
}

// OpenAPI is the OpenAPI 3.1 fragment describing the endpoints of Routes under
// /admin/poison; a service merges it into its document (apidoc.Build). It
// refers to the service document's #/components/schemas/Problem.
//
//go:embed openapi.yaml
var OpenAPI []byte
