// Package e2e holds the end-to-end and fault-injection tests: the whole system
// runs as real processes (two MariaDB servers, one Kafka broker, the services
// built from this repository) on the suite's own ports, and the tests kill,
// pause and restart them. See docs/testing.md and ADR 0009.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
)

var (
	infra                *harness.Infra
	infraErr             error
	orderBin, paymentBin string
	buildDir             = filepath.Join(harness.RepoRoot(), "build", "e2e")

	// The strategy comparison's and the negative controls' own servers,
	// each started by the first test that needs them: both lanes run beside
	// TestFaults, and each kills only its own servers (ADR 0050).
	strategiesLane = &laneServers{what: "the strategy comparison's servers", infra: harness.StrategiesInfra()}
	controlsLane   = &laneServers{what: "the negative controls' servers", infra: harness.ControlsInfra()}
)

// laneServers is a set of servers that one lane of the e2e suite starts on
// first use; TestMain stops it.
type laneServers struct {
	what  string
	infra *harness.Infra
	once  sync.Once
	err   error
	up    bool
}

// get starts the servers once and returns them.
func (l *laneServers) get(t *testing.T) *harness.Infra {
	t.Helper()
	l.once.Do(func() {
		start := time.Now()
		if l.err = l.infra.Up(); l.err == nil {
			l.up = true
			t.Logf("%s are up in %s", l.what, time.Since(start).Round(time.Millisecond))
		}
	})
	if l.err != nil {
		testenv.Missing(t, l.what, l.err)
	}
	return l.infra
}

// stop stops the servers if get started them.
func (l *laneServers) stop() {
	if l.up {
		_ = l.infra.Down()
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		infra = harness.E2EInfra()
		start := time.Now()
		infraErr = infra.Up()
		if infraErr == nil {
			// The fault-injection build: the services accept their *_FAULT_* switches.
			orderBin, paymentBin, infraErr = harness.Build(filepath.Join(buildDir, "bin"), "faults")
		}
		if infraErr == nil {
			fmt.Printf("e2e: servers up and services built in %s\n", time.Since(start).Round(time.Millisecond))
		}
	}
	code := m.Run()
	if os.Getenv("ONCEFLOW_E2E_KEEP_INFRA") != "1" {
		if infra != nil && infraErr == nil {
			_ = infra.Down()
		}
		strategiesLane.stop()
		controlsLane.stop()
		debeziumLane.stop()
	}
	stopCluster()
	stopDBCluster()
	os.Exit(code)
}

// unsafeName matches what may not appear in a stack's database and topic names.
var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// newStack starts a fresh system for the test on the e2e servers (own
// databases, topics, consumer groups, service processes), seeds accounts, and
// tears it down at the end.
func newStack(t *testing.T, cfg harness.StackConfig, accounts ...harness.Account) *harness.Stack {
	t.Helper()
	return newStackOn(t, infra, cfg, accounts...)
}

// newStackOn is newStack on the servers of on (the e2e servers, the cluster's
// or the strategy comparison's).
func newStackOn(t *testing.T, on *harness.Infra, cfg harness.StackConfig, accounts ...harness.Account) *harness.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	// The services are built with the e2e servers: without them there is
	// nothing to start on any servers.
	if infraErr != nil {
		testenv.Missing(t, "the e2e servers", infraErr)
	}
	// Databases and topics are named after the test: only letters, digits and
	// underscores are safe in both ("poison+breaker" is not a topic name).
	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 24 {
		name = name[:24]
	}
	cfg.Name = name + "_" + strings.ToLower(watermill.NewShortUUID()[:6])
	cfg.OrderBin, cfg.PaymentBin = orderBin, paymentBin
	cfg.LogDir = filepath.Join(buildDir, "logs")
	s, err := harness.NewStack(on, cfg)
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	t.Cleanup(s.Close)
	if err := s.Start(); err != nil {
		t.Fatalf("starting services: %v", err)
	}
	if err := s.SeedAccounts(accounts...); err != nil {
		t.Fatalf("seeding accounts: %v", err)
	}
	return s
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// killKafka kill -9s the e2e broker and returns what starts it again; if the
// test ends first, the broker is started at cleanup.
func killKafka(t *testing.T) (restart func()) {
	t.Helper()
	if err := infra.Kill(harness.Kafka); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = infra.Start(harness.Kafka)
		}
	})
	return func() {
		t.Helper()
		if err := infra.Start(harness.Kafka); err != nil {
			t.Fatal(err)
		}
		restarted = true
	}
}
