package e2e

import (
	"flag"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// The e2e lanes share the machine's cores: at most four run at a time, each
// on servers of its own. The four long lanes (the fault suite, the strategy
// comparison, the negative controls and the database-cluster lane) start at
// once, because the fault suite is the longest and sets the package's length;
// the Debezium relay lane and the diagnosis causes wait until one of them has
// ended and then take its place. Go's -parallel cannot say which test starts
// first, so the Makefile gives it room for every test (minLaneParallel) and
// this gate decides.
var lanes = struct {
	places     chan struct{}
	firstEnded chan struct{}
	once       sync.Once
}{places: make(chan struct{}, 4), firstEnded: make(chan struct{})}

// longLaneNames are the tests that call longLane.
var longLaneNames = []string{"TestFaults", "TestStrategies", "TestFaultsNegativeControl", "TestDBCluster"}

// minLaneParallel is the -parallel at which every top-level parallel test of
// the package holds a slot of its own, so that a test waiting at the gate
// never keeps a long lane from starting.
const minLaneParallel = 8

// longLane takes a place at once and gives it back when t has ended, letting
// the waiting lanes start.
func longLane(t *testing.T) {
	t.Helper()
	lanes.places <- struct{}{}
	t.Cleanup(func() {
		<-lanes.places
		lanes.once.Do(func() { close(lanes.firstEnded) })
	})
}

// laterLane waits until a long lane has ended (not when no long lane runs,
// or when -parallel is too small for waiting to be safe), then takes a place
// until t has ended.
func laterLane(t *testing.T) {
	t.Helper()
	if testing.Short() {
		return
	}
	if intFlag("test.parallel") >= minLaneParallel && longLanesSelected() {
		<-lanes.firstEnded
	}
	lanes.places <- struct{}{}
	t.Cleanup(func() { <-lanes.places })
}

// longLanesSelected reports whether -run (and -skip) leave a long lane to run.
func longLanesSelected() bool {
	run, skip := stringFlag("test.run"), stringFlag("test.skip")
	for _, name := range longLaneNames {
		if (run == "" || matchesTop(run, name)) && (skip == "" || !matchesTop(skip, name)) {
			return true
		}
	}
	return false
}

// matchesTop reports whether the top-level part of a -run or -skip pattern
// (before its first slash) matches a top-level test name.
func matchesTop(pattern, name string) bool {
	top, _, _ := strings.Cut(pattern, "/")
	ok, err := regexp.MatchString(top, name)
	return err == nil && ok
}

func stringFlag(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

func intFlag(name string) int {
	if f := flag.Lookup(name); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			if n, ok := g.Get().(int); ok {
				return n
			}
		}
	}
	return 0
}

func TestMatchesTop(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"TestFaults", "TestFaults", true},
		{"TestFaults$|TestFaultsNegativeControl", "TestFaultsNegativeControl", true},
		{"TestFaults$", "TestFaultsNegativeControl", false},
		{"TestDiagnosis", "TestFaults", false},
		{"TestDBCluster/lose-db-quorum", "TestDBCluster", true},
		{"TestStrategies/pause", "TestFaults", false},
		{"(", "TestFaults", false},
	}
	for _, tt := range tests {
		if got := matchesTop(tt.pattern, tt.name); got != tt.want {
			t.Errorf("matchesTop(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}
