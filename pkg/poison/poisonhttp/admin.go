package poisonhttp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/pkg/consumer/parkkey"
	"github.com/onceflow/onceflow/pkg/outbox/parking"
	"github.com/onceflow/onceflow/pkg/poison"
)

// parkedRoutes mounts the parked-row endpoints on g (already behind the admin
// token check).
func parkedRoutes(g router, tool *poison.Tool) {
	g.GET("/parked", func(c echo.Context) error {
		list, err := tool.Parked(c.Request().Context())
		if err != nil {
			return err
		}
		if list == nil {
			list = []parking.Row{}
		}
		return c.JSON(http.StatusOK, map[string]any{"parked": list})
	})
	g.GET("/parked/:id", func(c echo.Context) error {
		id, err := parkedID(c)
		if err != nil {
			return err
		}
		r, err := tool.ParkedRow(c.Request().Context(), id)
		if err != nil {
			return adminErr(err)
		}
		return c.JSON(http.StatusOK, r)
	})
	g.POST("/parked/replay", func(c echo.Context) error {
		done, err := tool.ReplayAllParked(c.Request().Context())
		if err != nil {
			return adminErr(err)
		}
		if done == nil {
			done = []parking.Row{}
		}
		return c.JSON(http.StatusOK, map[string]any{"replayed": done})
	})
	g.POST("/parked/:id/replay", func(c echo.Context) error {
		id, err := parkedID(c)
		if err != nil {
			return err
		}
		r, err := tool.ReplayParked(c.Request().Context(), id)
		if err != nil {
			return adminErr(err)
		}
		return c.JSON(http.StatusOK, map[string]any{"replayed": []parking.Row{r}})
	})
	g.POST("/parked/:id/dry-run", func(c echo.Context) error {
		id, err := parkedID(c)
		if err != nil {
			return err
		}
		d, err := tool.DryRunParked(c.Request().Context(), id)
		if err != nil {
			return adminErr(err)
		}
		return c.JSON(http.StatusOK, d)
	})
	g.POST("/parked/:id/discard", func(c echo.Context) error {
		id, err := parkedID(c)
		if err != nil {
			return err
		}
		r, err := tool.DiscardParked(c.Request().Context(), id)
		if err != nil {
			return adminErr(err)
		}
		return c.JSON(http.StatusOK, map[string]any{"discarded": r})
	})
}

func parkedID(c echo.Context) (int64, error) {
	n, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || n < 1 {
		return 0, echo.NewHTTPError(http.StatusBadRequest, "id must be a positive integer")
	}
	return n, nil
}

// keyRoutes mounts the parked-key endpoints on g (already behind the admin
// token check). ?handler=NAME picks the consumer when several have the key.
func keyRoutes(g router, tool *poison.Tool) {
	keys := tool.Keys()
	g.GET("/keys", func(c echo.Context) error {
		list, err := keys.List(c.Request().Context())
		if err != nil {
			return err
		}
		if list == nil {
			list = []parkkey.ParkedKey{}
		}
		return c.JSON(http.StatusOK, map[string]any{"keys": list})
	})
	// on mounts an endpoint that applies op to the key in the path.
	on := func(method, path string, status int, field string, op func(ctx context.Context, key, handler string) (any, error)) {
		g.Add(method, path, func(c echo.Context) error {
			k, err := keyParam(c)
			if err != nil {
				return err
			}
			res, err := op(c.Request().Context(), k, c.QueryParam("handler"))
			if err != nil {
				return adminErr(err)
			}
			if field != "" {
				res = map[string]any{field: res}
			}
			return c.JSON(status, res)
		})
	}
	on(http.MethodGet, "/keys/:key", http.StatusOK, "", func(ctx context.Context, key, handler string) (any, error) {
		return keys.Get(ctx, key, handler)
	})
	on(http.MethodPost, "/keys/:key/replay", http.StatusAccepted, "replay_requested", func(ctx context.Context, key, handler string) (any, error) {
		return keys.Replay(ctx, key, handler)
	})
	on(http.MethodPost, "/keys/:key/discard", http.StatusOK, "discarded", func(ctx context.Context, key, handler string) (any, error) {
		return keys.Discard(ctx, key, handler)
	})
}

func keyParam(c echo.Context) (string, error) {
	k, err := url.PathUnescape(c.Param("key"))
	if err != nil || k == "" {
		return "", echo.NewHTTPError(http.StatusBadRequest, "key must be a non-empty, URL-escaped path segment")
	}
	return k, nil
}

// adminErr maps the errors of the parked outbox rows and parked keys to HTTP:
// an unknown row or key 404; a row that is not its key's head or was already
// replayed, an ambiguous key or a pending replay 409; anything else stays as
// it is (a 500 from Echo's error handler).
func adminErr(err error) error {
	switch {
	case errors.Is(err, parking.ErrNotFound), errors.Is(err, parkkey.ErrKeyNotParked):
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	case errors.Is(err, parking.ErrNotHead), errors.Is(err, parking.ErrAlreadyReleased),
		errors.Is(err, parkkey.ErrAmbiguousKey), errors.Is(err, parkkey.ErrReplayPending):
		return echo.NewHTTPError(http.StatusConflict, err.Error())
	}
	return err
}
