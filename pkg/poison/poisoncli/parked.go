package poisoncli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/onceflow/onceflow/pkg/poison"
)

// Parked rows of the service's outbox: events Kafka refused for a
// reason retrying cannot fix, and later events of the same key parked behind
// them. They live in the service's database (outbox_parked), not in Kafka.

// ParkedUsage describes the "poison parked" subcommands.
const ParkedUsage = `usage: <service> poison parked <command>
  list                 parked outbox rows: id, key, head?, reason, parked/replays, kafka error
  show <id>            one row in full (JSON, with payload and metadata)
  dry-run <id>         what replaying the head of a key would send, and whether Kafka would take it now
                       (its topic exists, it fits the size limits); nothing is sent or changed
  replay <id>          send the head of a key back to the outbox; the key's later rows follow it in order
  replay --all         replay the head of every key
  discard <id>         give up the head of a key for good; the key's next row is released`

func runParkedCLI(ctx context.Context, tool *poison.Tool, args []string, out io.Writer) error {
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
	case "dry-run":
		n, err := id()
		if err != nil {
			return err
		}
		d, err := tool.DryRunParked(ctx, n)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tKEY\tTOPIC\tEVENT\tBYTES")
		for _, r := range d.Rows {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\n", r.ID, r.Key, r.Topic, r.EventType, r.Size)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		switch {
		case d.WouldSucceed:
			fmt.Fprintf(out, "a replay would send these %d row(s) in order; Kafka would take the head now (%d of at most %d bytes)\n",
				len(d.Rows), d.HeadBytes, d.MaxMessageBytes)
		case !d.TopicExists:
			fmt.Fprintf(out, "a replay would be refused again (%s): topic %s does not exist\n", d.ReasonCode, d.Rows[0].Topic)
		default:
			fmt.Fprintf(out, "a replay would be refused again (%s): the head has %d bytes, Kafka takes at most %d for %s\n",
				d.ReasonCode, d.HeadBytes, d.MaxMessageBytes, d.Rows[0].Topic)
		}
		fmt.Fprintln(out, "nothing was sent or changed")
		return nil
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
