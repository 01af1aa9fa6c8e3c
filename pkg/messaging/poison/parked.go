package poison

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/outbox/parking"

	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/pkg/messaging"
)

// Parked rows of the service's outbox (ADR 22): events Kafka refused for a
// reason retrying cannot fix, and later events of the same key parked behind
// them. They live in the service's database (outbox_parked), not in Kafka.

// ParkedUsage describes the "poison parked" subcommands.
const ParkedUsage = `usage: <service> poison parked <command>
  list                 parked outbox rows: id, key, head?, reason, parked/replays, kafka error
  show <id>            one row in full (JSON, with payload and metadata)
  replay <id>          send the head of a key back to the outbox; the key's later rows follow it in order
  replay --all         replay the head of every key
  discard <id>         give up the head of a key for good; the key's next row is released`

// parked is the parking of the service's outbox. Its own Outbox wakes no
// forwarder: the service's forwarders find a replayed row at their next poll.
func (t *Tool) parked() *parking.Parking {
	p, _ := parking.New(parking.Config{DB: t.db, Outbox: outbox.New()}) // both given
	return p
}

// Parked lists the parked outbox rows, in park order.
func (t *Tool) Parked(ctx context.Context) ([]parking.Row, error) {
	return t.parked().List(ctx)
}

// ParkedRow returns one parked row with its payload, or parking.ErrNotFound.
func (t *Tool) ParkedRow(ctx context.Context, id int64) (parking.Row, error) {
	return t.parked().Get(ctx, id)
}

// ReplayParked replays the parked row id (the head of its key); see
// parking.Parking.Replay.
func (t *Tool) ReplayParked(ctx context.Context, id int64) (parking.Row, error) {
	return t.parked().Replay(ctx, id)
}

// ReplayAllParked replays the head of every key with parked rows.
func (t *Tool) ReplayAllParked(ctx context.Context) ([]parking.Row, error) {
	return t.parked().ReplayAll(ctx)
}

// DiscardParked discards the parked row id (the head of its key); see
// parking.Parking.Discard.
func (t *Tool) DiscardParked(ctx context.Context, id int64) (parking.Row, error) {
	return t.parked().Discard(ctx, id)
}

func runParkedCLI(ctx context.Context, tool *Tool, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", ParkedUsage)
	}
	id := func() (int64, error) {
		if len(args) < 2 {
			return 0, fmt.Errorf("missing id\n%s", ParkedUsage)
		}
		n, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("id %q is not a positive integer", args[1])
		}
		return n, nil
	}
	switch args[0] {
	case "list":
		list, err := tool.Parked(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tPARKED AT\tKEY\tHEAD\tEVENT\tREASON\tPARKED/REPLAYS\tKAFKA ERROR")
		for _, r := range list {
			head := ""
			switch {
			case r.Released:
				head = "replayed"
			case r.Head:
				head = "head"
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", r.ID, r.ParkedAt, r.Key, head, r.EventType, r.Cause,
				r.TimesParked, r.Replays, strings.ReplaceAll(r.KafkaError, "\n", " "))
		}
		fmt.Fprintf(w, "%d parked outbox row(s)\n", len(list))
		return w.Flush()
	case "show":
		n, err := id()
		if err != nil {
			return err
		}
		r, err := tool.ParkedRow(ctx, n)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "replay":
		if len(args) > 1 && args[1] == "--all" {
			done, err := tool.ReplayAllParked(ctx)
			fmt.Fprintf(out, "replayed the head of %d key(s)\n", len(done))
			return err
		}
		n, err := id()
		if err != nil {
			return err
		}
		r, err := tool.ReplayParked(ctx, n)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "replayed parked row %d (%s, key %s) into the outbox\n", r.ID, r.MessageID, r.Key)
		return nil
	case "discard":
		n, err := id()
		if err != nil {
			return err
		}
		r, err := tool.DiscardParked(ctx, n)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "discarded parked row %d (%s, key %s); the key's next parked row, if any, is released\n", r.ID, r.MessageID, r.Key)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], ParkedUsage)
	}
}

// parkedRoutes mounts the parked-row endpoints on g (already behind the admin
// token check).
func parkedRoutes(g router, tool *Tool) {
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

// adminErr maps the errors of the parked outbox rows and parked keys to HTTP:
// an unknown row or key 404; a row that is not its key's head or was already
// replayed, an ambiguous key or a pending replay 409; anything else stays as
// it is (a 500 from Echo's error handler).
func adminErr(err error) error {
	switch {
	case errors.Is(err, parking.ErrNotFound), errors.Is(err, messaging.ErrKeyNotParked):
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	case errors.Is(err, parking.ErrNotHead), errors.Is(err, parking.ErrAlreadyReleased),
		errors.Is(err, messaging.ErrAmbiguousKey), errors.Is(err, messaging.ErrReplayPending):
		return echo.NewHTTPError(http.StatusConflict, err.Error())
	}
	return err
}
