package poisoncli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/onceflow/onceflow/pkg/poison"
)

// Parked keys of the service's consumers in the park-key failure mode (ADR
// 33): a message a consumer gave up on heads its key's queue, the key's later
// messages wait behind it. They live in the service's database
// (consumer_parked_keys, consumer_parked_messages), not in Kafka.

// KeysUsage describes the "poison keys" subcommands.
const KeysUsage = `usage: <service> poison keys <command> [--handler NAME]
  list                 parked keys: key, handler, messages, replay pending?, head's reason and error
  show <key>           one key's queue in full (JSON, head first, with payloads)
  dry-run <key>        what releasing the key would change: its queue run through the handler, head
                       first, in a transaction that is rolled back (asks the running service, which
                       has the handlers); nothing is released
  replay <key>         ask the running consumers to release the key: head first, then the rest in order;
                       a message that fails again stops the release and becomes the head
  discard <key>        give the head up for good; the messages behind it are released in order
--handler names the consumer when several have the same key parked.`

func runKeysCLI(ctx context.Context, cfg Config, tool *poison.Tool, args []string, out io.Writer) error {
	var handler string
	var rest []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--handler" {
			if i+1 >= len(args) {
				return fmt.Errorf("--handler needs a name\n%s", KeysUsage)
			}
			handler = args[i+1]
			i++
			continue
		}
		rest = append(rest, args[i])
	}
	if len(rest) == 0 {
		return fmt.Errorf("%s", KeysUsage)
	}
	keys := tool.Keys()
	key := func() (string, error) {
		if len(rest) < 2 || rest[1] == "" {
			return "", fmt.Errorf("missing key\n%s", KeysUsage)
		}
		return rest[1], nil
	}
	switch rest[0] {
	case "list":
		list, err := keys.List(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "PARKED AT\tKEY\tHANDLER\tMESSAGES\tREPLAY\tHEAD\tREASON\tERROR")
		for _, k := range list {
			replay := ""
			if k.ReplayRequested {
				replay = "pending"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", k.ParkedAt, k.Key, k.Handler, k.Messages, replay,
				k.Head.MessageID, k.Head.ReasonCode, strings.ReplaceAll(k.Head.Error, "\n", " "))
		}
		fmt.Fprintf(w, "%d parked key(s)\n", len(list))
		return w.Flush()
	case "show":
		k, err := key()
		if err != nil {
			return err
		}
		pk, err := keys.Get(ctx, k, handler)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(pk)
	case "dry-run":
		k, err := key()
		if err != nil {
			return err
		}
		return dryRunKey(ctx, cfg, k, handler, out)
	case "replay":
		k, err := key()
		if err != nil {
			return err
		}
		pk, err := keys.Replay(ctx, k, handler)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "replay of key %s (%s) requested: the running consumers release it, head first\n", pk.Key, pk.Handler)
		return nil
	case "discard":
		k, err := key()
		if err != nil {
			return err
		}
		m, err := keys.Discard(ctx, k, handler)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "discarded the head of key %s (%s); the messages behind it, if any, are released\n", k, m.MessageID)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", rest[0], KeysUsage)
	}
}

// dryRunKey asks the running service for the dry run of key's release and
// prints what it would change.
func dryRunKey(ctx context.Context, cfg Config, key, handler string, out io.Writer) error {
	q := url.Values{}
	if handler != "" {
		q.Set("handler", handler)
	}
	var d poison.KeyDryRun
	if err := askService(ctx, cfg, "/admin/poison/keys/"+url.PathEscape(key)+"/dry-run?"+q.Encode(), &d); err != nil {
		return err
	}
	r := d.Result
	fmt.Fprintf(out, "dry run of the release of key %s (%s): %d parked message(s), head %s (%s)\n",
		d.Key.Key, d.Key.Handler, d.Key.Messages, d.Key.Head.MessageID, d.Key.Head.ReasonCode)
	if r.WouldSucceed {
		fmt.Fprintln(out, "every message would succeed, in order: the key would be released")
	} else {
		fmt.Fprintf(out, "message %d of %d (%s) would fail again (%s): the release would stop there, and it would head the key again\n",
			r.Ran, d.Key.Messages, r.FailedMessageID, r.ReasonCode)
	}
	if d.StateChange != "" {
		fmt.Fprintf(out, "state: %s\n", d.StateChange)
	}
	var types []string
	for _, ev := range r.Events {
		types = append(types, ev.Type)
	}
	fmt.Fprintf(out, "events it would emit: %s\n", orNone(strings.Join(types, " ")))
	fmt.Fprintln(out, "nothing was released or changed")
	return nil
}
