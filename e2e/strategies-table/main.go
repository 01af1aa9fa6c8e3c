// Command strategies-table writes the table of the strategy comparison into
// docs/strategies.md from build/e2e/strategies.json (written by the e2e test
// TestStrategies), between the document's markers; the hand-written text
// around them stays as it is.
//
//	go run ./e2e/strategies-table [strategies.json [strategies.md]]
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/onceflow/onceflow/e2e/harness"
)

func main() {
	in := filepath.Join(harness.RepoRoot(), "build", "e2e", "strategies.json")
	doc := filepath.Join(harness.RepoRoot(), "docs", "strategies.md")
	if len(os.Args) > 1 {
		in = os.Args[1]
	}
	if len(os.Args) > 2 {
		doc = os.Args[2]
	}
	if err := run(in, doc); err != nil {
		fmt.Fprintln(os.Stderr, "strategies-table:", err)
		os.Exit(1)
	}
	fmt.Println("wrote the table of", in, "into", doc)
}

func run(in, doc string) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("%w (run the comparison first: make e2e, or go test -run TestStrategies ./e2e/)", err)
	}
	var rows []harness.StrategyRow
	if err := json.Unmarshal(data, &rows); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	text, err := os.ReadFile(doc)
	if err != nil {
		return err
	}
	out, err := harness.ReplaceTable(string(text), harness.StrategiesTable(rows))
	if err != nil {
		return fmt.Errorf("%s: %w", doc, err)
	}
	return os.WriteFile(doc, []byte(out), 0o644)
}
