package poisoncli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// Usage describes the poison subcommand.
const Usage = `usage: <service> poison <command>
  list [--limit N] [--cursor N] [--oldest-first] [--reason-code CODE]
                       a page of the poisoned messages, newest first: offset, time, id,
                       from topic, replays, reason; it ends with the --cursor of the next page
  show <offset>        one message in full (JSON)
  replay <offset>      send it back to the consumer (and consumer group) that poisoned it
  replay --all [--reason-code CODE] [--cursor N] [--limit N]
                       the dry run of a page of the messages not replayed yet (with that
                       reason code), oldest first: what each would change, the totals and
                       the confirmation token (asks the running service, which has the
                       handlers); nothing is replayed
  replay --all [--reason-code CODE] [--cursor N] [--limit N] --confirm TOKEN
                       replay that page, if it is still the set of the dry run whose token
                       this is; then the next page (--cursor) the same way
  purge [--up-to N]    delete messages up to offset N (all without --up-to)
  purge --replayed     delete the replayed messages up to the first one not replayed
  parked ...           the outbox rows Kafka refused for good (see "poison parked")
  keys ...             keys parked by a park-key consumer (see "poison keys")
The service's own environment (its DB DSN, Kafka brokers and poison topic) says where.`

// Config says where a service's poison topic, parked rows and parked keys are.
type Config struct {
	// DB is the service's database (parked rows, parked keys, replay records).
	DB sqldb.Config
	// Kafka and PoisonTopic are the service's poison topic.
	Kafka       kafka.Config
	PoisonTopic string
	// Service is the service's command ("order"), for the commands the CLI
	// prints; ServiceAddr (host:port) and AdminToken reach the running
	// service, which runs the dry runs of a bulk replay and of a parked key.
	Service     string
	ServiceAddr string
	AdminToken  string
}

// RunCLI runs a poison subcommand (args after "poison") for the service whose
// poison topic and database cfg names, writing to out. It fails on unknown
// commands, bad offsets or when the database or Kafka cannot be reached.
func RunCLI(ctx context.Context, cfg Config, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", Usage)
	}
	cfg.DB, cfg.Kafka = cfg.DB.Defaults(), cfg.Kafka.Defaults()
	if err := cfg.DB.Validate(); err != nil {
		return err
	}
	db, err := sqldb.Open(ctx, cfg.DB.DSN, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	tool := poison.New(cfg.Kafka, cfg.PoisonTopic, db)
	defer tool.Close()

	offset := func(i int) (int64, error) {
		if len(args) <= i {
			return 0, fmt.Errorf("missing offset\n%s", Usage)
		}
		n, err := strconv.ParseInt(args[i], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("offset %q is not a non-negative integer", args[i])
		}
		return n, nil
	}
	switch args[0] {
	case "parked":
		return runParkedCLI(ctx, tool, args[1:], out)
	case "keys":
		return runKeysCLI(ctx, cfg, tool, args[1:], out)
	case "list":
		q, err := parseQuery(args[1:])
		if err != nil {
			return err
		}
		page, err := tool.List(ctx, q)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "OFFSET\tPOISONED AT\tID\tFROM\tREPLAYS\tREASON")
		for _, e := range page.Entries {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\n", e.Offset, e.PoisonedAt.Format("2006-01-02 15:04:05"), e.ID,
				e.FromTopic, len(e.Replays), strings.ReplaceAll(e.Error, "\n", " "))
		}
		fmt.Fprintf(w, "%d message(s) of %s", len(page.Entries), cfg.PoisonTopic)
		if page.Next != nil {
			fmt.Fprintf(w, "; the next page: --cursor %d", *page.Next)
		}
		fmt.Fprintln(w)
		return w.Flush()
	case "show":
		n, err := offset(1)
		if err != nil {
			return err
		}
		e, err := tool.Get(ctx, n)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(e)
	case "replay":
		if len(args) > 1 && args[1] == "--all" {
			q, confirm, err := parseReplayQuery(args[2:])
			if err != nil {
				return err
			}
			if confirm == "" {
				return dryRunAll(ctx, cfg, q, out)
			}
			return replayAll(ctx, cfg, tool, q, confirm, out)
		}
		n, err := offset(1)
		if err != nil {
			return err
		}
		e, err := tool.Replay(ctx, n)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "replayed offset %d (%s) to %s (from %s)\n", e.Offset, e.ID, e.Handler, e.FromTopic)
		return nil
	case "purge":
		upTo := int64(-1)
		if len(args) > 1 && args[1] == "--replayed" {
			n, err := tool.PurgeReplayed(ctx)
			fmt.Fprintf(out, "purged %d replayed message(s)\n", n)
			return err
		}
		if len(args) > 1 {
			if args[1] != "--up-to" {
				return fmt.Errorf("unknown flag %q\n%s", args[1], Usage)
			}
			if upTo, err = offset(2); err != nil {
				return err
			}
		}
		n, err := tool.Purge(ctx, upTo)
		fmt.Fprintf(out, "purged %d message(s)\n", n)
		return err
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], Usage)
	}
}

// parseQuery reads the flags of "list".
func parseQuery(args []string) (poison.Query, error) {
	fs := flag.NewFlagSet("poison list", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	reason := fs.String("reason-code", "", "only the messages with this reason code")
	limit := fs.Int("limit", poison.DefaultLimit, "the most messages to show")
	cursor := fs.Int64("cursor", 0, "the offset to start at (a previous page's next cursor)")
	oldestFirst := fs.Bool("oldest-first", false, "go from the oldest message")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return poison.Query{}, fmt.Errorf("bad flags %q\n%s", args, Usage)
	}
	q, err := pageQuery(fs, *reason, *limit, *cursor)
	if *oldestFirst {
		q.Order = poison.OldestFirst
	}
	return q, err
}

// parseReplayQuery reads the flags of "replay --all": the page and the
// confirmation token ("" for the dry run).
func parseReplayQuery(args []string) (poison.Query, string, error) {
	fs := flag.NewFlagSet("poison replay --all", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	reason := fs.String("reason-code", "", "only the messages with this reason code")
	limit := fs.Int("limit", poison.DefaultLimit, "the most messages in the page")
	cursor := fs.Int64("cursor", 0, "the offset to start at (the next cursor of the page before)")
	confirm := fs.String("confirm", "", "the confirmation token of the page's dry run")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return poison.Query{}, "", fmt.Errorf("bad flags %q\n%s", args, Usage)
	}
	q, err := pageQuery(fs, *reason, *limit, *cursor)
	return q, *confirm, err
}

// pageQuery checks the page flags fs parsed and returns their query (newest
// first; --cursor only if given).
func pageQuery(fs *flag.FlagSet, reason string, limit int, cursor int64) (poison.Query, error) {
	if limit < 1 || limit > poison.MaxLimit {
		return poison.Query{}, fmt.Errorf("--limit must be between 1 and %d", poison.MaxLimit)
	}
	q := poison.Query{Limit: limit, Order: poison.NewestFirst, ReasonCode: reason}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "cursor" {
			q.Cursor = &cursor
		}
	})
	if q.Cursor != nil && cursor < 0 {
		return poison.Query{}, fmt.Errorf("--cursor must be a non-negative offset")
	}
	return q, nil
}
