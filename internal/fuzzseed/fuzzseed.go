// Package fuzzseed keeps the seed corpora of the Go fuzz targets
// (testdata/fuzz/<FuzzName>/seed-<name>, in the file format `go test -fuzz`
// reads) equal to what the code writes today: the seeds are real messages and
// requests built by the package's own encoders, so they follow the contract
// when it changes.
//
// A fuzz target's package has a test that builds its seeds and calls Sync. By
// default Sync checks the committed files and fails the test for a missing or
// stale one; with ONCEFLOW_FUZZ_SEEDS=write in the environment it (re)writes
// them instead. Files not named seed-* (inputs the fuzzer found and that were
// kept as regression seeds) are left alone.
package fuzzseed

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// EnvWrite is the environment variable that makes Sync write the seed files
// instead of checking them: ONCEFLOW_FUZZ_SEEDS=write.
const EnvWrite = "ONCEFLOW_FUZZ_SEEDS"

// Seed is one named input of a fuzz target: its arguments, in the order and of
// the types of the target's fuzz function ([]byte, string, int, int64, bool).
type Seed struct {
	Name string
	Args []any
}

// Sync makes testdata/fuzz/<target>/seed-<name> (relative to the test's
// working directory, its package directory) hold each seed. It fails t for a
// seed of an unsupported argument type, and, unless EnvWrite is "write", for
// every seed file that is missing or differs from its seed.
func Sync(t testing.TB, target string, seeds []Seed) {
	t.Helper()
	write := os.Getenv(EnvWrite) == "write"
	dir := filepath.Join("testdata", "fuzz", target)
	if write {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range seeds {
		want, err := Encode(s.Args...)
		if err != nil {
			t.Fatalf("seed %s of %s: %v", s.Name, target, err)
		}
		path := filepath.Join(dir, "seed-"+s.Name)
		if write {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != string(want) {
			t.Errorf("%s is missing or stale (the encoder changed?): run this test with %s=write and commit the files", path, EnvWrite)
		}
	}
}

// Encode returns the corpus file of one input: "go test fuzz v1" and one Go
// literal per argument. It fails for an argument type the fuzzing engine does
// not take here.
func Encode(args ...any) ([]byte, error) {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case string:
			fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(v))
		case int:
			fmt.Fprintf(&b, "int(%d)\n", v)
		case int64:
			fmt.Fprintf(&b, "int64(%d)\n", v)
		case bool:
			fmt.Fprintf(&b, "bool(%t)\n", v)
		default:
			return nil, fmt.Errorf("argument of type %T: not a fuzzing type this package writes", a)
		}
	}
	return []byte(b.String()), nil
}
