package poisoncli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
  replay <key>         ask the running consumers to release the key: head first, then the rest in order;
                       a message that fails again stops the release and becomes the head
  discard <key>        give the head up for good; the messages behind it are released in order
--handler names the consumer when several have the same key parked.`

func runKeysCLI(ctx context.Context, tool *poison.Tool, args []string, out io.Writer) error {
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
