package poison

import (
	"crypto/subtle"
	_ "embed"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// Routes mounts the admin endpoints on g (e.g. e.Group("/admin/poison")):
//
//	GET  ""                  list poisoned messages, oldest first
//	GET  "/:offset"          one message
//	POST "/:offset/replay"   send it back to the topic it came from
//	POST "/replay"           replay every message not replayed yet
//	POST "/purge?up_to=N"    delete messages up to offset N (all without up_to)
//	GET  "/parked"           parked outbox rows (ADR 22), in park order
//	GET  "/parked/:id"       one parked row with payload and metadata
//	POST "/parked/:id/replay"   replay the head of a key (its later rows follow); 409 if not the head
//	POST "/parked/replay"    replay the head of every key
//	POST "/parked/:id/discard"  give up the head of a key; its next row is released
//	GET  "/keys"             keys parked by park-key consumers (ADR 33), with their heads
//	GET  "/keys/:key"        one key's queue, head first, with payloads (?handler=NAME if ambiguous)
//	POST "/keys/:key/replay"   202: the running consumers release the key in order
//	POST "/keys/:key/discard"  give up the key's head; the messages behind it are released
//
// Every request needs "Authorization: Bearer <token>"; with an empty token the
// endpoints answer 404, so that an unconfigured service exposes nothing.
func Routes(g *echo.Group, tool *Tool, token string) {
	g.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if token == "" {
				return echo.NewHTTPError(http.StatusNotFound, "admin endpoints are disabled: no admin token configured")
			}
			return next(c)
		}
	})
	g.Use(middleware.KeyAuthWithConfig(middleware.KeyAuthConfig{
		Validator: func(key string, _ echo.Context) (bool, error) {
			return subtle.ConstantTimeCompare([]byte(key), []byte(token)) == 1, nil
		},
		ErrorHandler: func(error, echo.Context) error {
			return echo.NewHTTPError(http.StatusUnauthorized, "a valid admin token is required (Authorization: Bearer <token>)")
		},
	}))
	parkedRoutes(g, tool)
	keyRoutes(g, tool)
	g.GET("", func(c echo.Context) error {
		list, err := tool.List(c.Request().Context())
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"topic": tool.topic, "messages": nonNil(list)})
	})
	g.GET("/:offset", func(c echo.Context) error {
		off, err := offsetParam(c)
		if err != nil {
			return err
		}
		e, err := tool.Get(c.Request().Context(), off)
		if err != nil {
			return notFound(err)
		}
		return c.JSON(http.StatusOK, e)
	})
	g.POST("/:offset/replay", func(c echo.Context) error {
		off, err := offsetParam(c)
		if err != nil {
			return err
		}
		e, err := tool.Replay(c.Request().Context(), off)
		if err != nil {
			return notFound(err)
		}
		return c.JSON(http.StatusOK, map[string]any{"replayed": []Entry{e}})
	})
	g.POST("/replay", func(c echo.Context) error {
		done, err := tool.ReplayAll(c.Request().Context())
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"replayed": nonNil(done)})
	})
	g.POST("/purge", func(c echo.Context) error {
		upTo := int64(-1)
		if v := c.QueryParam("up_to"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
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

func notFound(err error) error {
	if errors.Is(err, ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	}
	return err
}

func nonNil(l []Entry) []Entry {
	if l == nil {
		return []Entry{}
	}
	return l
}

// OpenAPI is the OpenAPI 3.1 fragment describing the endpoints of Routes under
// /admin/poison; a service merges it into its document (apidoc.Build). It
// refers to the service document's #/components/schemas/Problem.
//
//go:embed openapi.yaml
var OpenAPI []byte
