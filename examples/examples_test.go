// Package examples holds the test that builds every example and runs it
// against the test servers, checking what it prints: each line it expects is
// the example's guarantee, so an example whose pattern breaks fails here.
package examples

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// examples: each directory and the lines its output must contain (regular
// expressions, in this order).
var examples = []struct {
	dir  string
	want []string
}{
	{"outbox", []string{
		`order-2: rolled back .*: neither the row nor the event exists`,
		`outbox before the relay runs: 1 row\(s\) waiting`,
		`kafka received, in order: order-1, order-3\n`,
		`outbox after the relay: 0 row\(s\)`,
		`orders in the database: 2; events in Kafka: 2\n`,
	}},
	{"inbox", []string{
		`delivery 1 of payment-order-1: failed .*: balance 0\n`,
		`delivery 2 of payment-order-1: applied: balance 1250\n`,
		`delivery 3 of payment-order-1: duplicate, .*: balance 1250\n`,
		`two deliveries of payment-order-2 at once: balance 2500\n`,
		`final balance 2500 cents\n`,
	}},
	{"consumer-poison", []string{
		`the partition moved on: order-1 handled 1 time\(s\), order-3 1 time\(s\)\n`,
		`poisoned: offset 0, reason_code invalid_event, .*payload "\{not an order"\n`,
		`poisoned: offset 1, reason_code handler_failed, .*payload "order-2"\n`,
		`order-2 handled after the replay\n`,
		`replayed again: the inbox absorbed it; effects: order-1=1 order-2=1 order-3=1\n`,
	}},
	{"parking", []string{
		`kafka received: order-y placed \(order-x does not hold the outbox\)\n`,
		`parked: row \d+, key order-x, head true, reason message_too_large\n`,
		`parked: row \d+, key order-x, head false, reason behind_parked\n`,
		`kafka received, in order: (order-y placed, )+order-x placed \(\d+ bytes\), order-x cancelled\n`,
		`parked rows left: 0\n`,
	}},
	{"requeue", []string{
		`applied in order: order-1, order-3, order-2 `,
		`order-2: \d+ attempts`,
		`order-4: 8 attempts .*, then poisoned: payload "order-4", reason_code handler_failed\n`,
	}},
	{"parkkey", []string{
		`applied so far: order-b placed\n`,
		`parked on key order-a: "order-a placed", reason_code handler_failed\n`,
		`parked on key order-a: "order-a paid", reason_code behind_parked\n`,
		`parked on key order-a: "order-a cancelled", reason_code behind_parked\n`,
		`released; applied in order: order-b placed, order-a placed, order-a paid, order-a cancelled\n`,
	}},
}

// TestExamples builds each example and runs it against the servers of
// internal/testenv; the example creates its own database and topics and
// removes them, which the test checks.
func TestExamples(t *testing.T) {
	testenv.NeedsServers(t, "MariaDB and Kafka")
	kc := testenv.Kafka(t)
	dial, cancelDial := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancelDial()
	admin, err := sqldb.Open(dial, testenv.DSN(testenv.OrderDBAddr, ""), 2)
	if err != nil {
		testenv.Missing(t, "MariaDB at "+testenv.OrderDBAddr, err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	bin := t.TempDir()
	for _, ex := range examples {
		t.Run(ex.dir, func(t *testing.T) {
			t.Parallel()
			exe := filepath.Join(bin, ex.dir)
			if out, err := exec.Command("go", "build", "-o", exe, "./"+ex.dir).CombinedOutput(); err != nil {
				t.Fatalf("go build ./examples/%s: %v\n%s", ex.dir, err, out)
			}
			// What earlier runs left (an example stopped with Ctrl-C cleans up
			// nothing) is not this run's: only new names count.
			dbsBefore, topicsBefore := databasesOf(t, admin, strings.ReplaceAll(ex.dir, "-", "_")), topicsOf(t, kc, ex.dir)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe)
			cmd.Env = append(os.Environ(), "ORDER_DB_ADDR="+testenv.OrderDBAddr, "KAFKA_BROKERS="+strings.Join(testenv.KafkaBrokers, ","))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("examples/%s: %v\n%s", ex.dir, err, out)
			}
			rest := string(out)
			for _, w := range ex.want {
				loc := regexp.MustCompile(w).FindStringIndex(rest)
				if loc == nil {
					t.Fatalf("examples/%s printed no line matching %q after what came before; it printed:\n%s", ex.dir, w, out)
				}
				rest = rest[loc[1]:]
			}
			if left := added(dbsBefore, databasesOf(t, admin, strings.ReplaceAll(ex.dir, "-", "_"))); len(left) > 0 {
				t.Errorf("examples/%s left its database(s) %v", ex.dir, left)
			}
			// A deleted topic leaves the brokers' metadata shortly after: wait for it.
			var left []string
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				if left = added(topicsBefore, topicsOf(t, kc, ex.dir)); len(left) == 0 || time.Now().After(deadline) {
					break
				}
			}
			if len(left) > 0 {
				t.Errorf("examples/%s left its topic(s) %v", ex.dir, left)
			}
		})
	}
}

// added returns the names of after that are not in before.
func added(before, after []string) []string {
	var names []string
	for _, n := range after {
		if !slices.Contains(before, n) {
			names = append(names, n)
		}
	}
	return names
}

// databasesOf lists the databases named after an example's runs.
func databasesOf(t *testing.T, admin *sql.DB, example string) []string {
	t.Helper()
	rows, err := admin.Query("SHOW DATABASES LIKE ?", example+`\_%`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// topicsOf lists the topics named after an example's runs (<example>-<run>-<topic>).
func topicsOf(t *testing.T, kc kafka.Config, example string) []string {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.ConsumerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	topics, err := admin.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range topics {
		if rest, ok := strings.CutPrefix(name, example+"-"); ok && strings.Count(rest, "-") == 1 {
			names = append(names, name)
		}
	}
	return names
}
