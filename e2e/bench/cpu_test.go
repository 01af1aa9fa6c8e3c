package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/servicemain"
)

// A /proc/<pid>/stat line of a process whose name holds a space and a ')';
// utime 1500, stime 300 (fields 14, 15).
const statLine = "4242 (java) x) S 1 4242 4242 0 -1 4194560 123 0 0 0 1500 300 0 0 20 0 40 0 5000 3000000000 100000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n"

func TestParseStatTicks(t *testing.T) {
	t.Parallel()
	got, err := parseStatTicks(statLine)
	if err != nil || got != 1800 {
		t.Errorf("parseStatTicks = %v, %v; want 1800", got, err)
	}
	for _, bad := range []string{"", "4242 java S 1", "4242 (java) S 1 2 3", "4242 (java) S 1 4242 4242 0 -1 4194560 123 0 0 0 x 300 0"} {
		if _, err := parseStatTicks(bad); err == nil {
			t.Errorf("parseStatTicks(%q) succeeded", bad)
		}
	}
}

// TestCPUSplit: two samples 10 s apart, 1,000 orders, 100 ticks/s, 2 CPUs.
func TestCPUSplit(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	a := cpuSample{at: t0, ticks: map[string]int64{"order_service": 1000, "kafka": 5000, "load_generator": 10}}
	b := cpuSample{at: t0.Add(10 * time.Second), ticks: map[string]int64{"order_service": 1300, "kafka": 5550, "load_generator": 60, "order_db": 100}}
	c := cpuSplit(a, b, 1000, 100, 2)
	want := map[string]float64{"order_service": 3, "payment_service": 0, "order_db": 1, "payment_db": 0, "kafka": 5.5, "load_generator": 0.5}
	for name, ms := range want {
		if c.PerOrderMs[name] != ms {
			t.Errorf("%s: %v ms/order, want %v", name, c.PerOrderMs[name], ms)
		}
	}
	if c.TotalMs != 10 || c.AvailableMs != 20 || c.WindowSec != 10 || c.Orders != 1000 {
		t.Errorf("total %v, available %v, window %v, orders %v; want 10, 20, 10, 1000", c.TotalMs, c.AvailableMs, c.WindowSec, c.Orders)
	}
	if z := cpuSplit(a, b, 0, 100, 2); z.TotalMs != 0 || len(z.PerOrderMs) != 0 {
		t.Errorf("no orders: %+v, want zeros", z)
	}
}

// TestOrderMessagingConfig: the forwarder phase runs with the order service's
// messaging defaults, and -service-env's ORDER_* settings change them as they
// change the service (the payment service's do not).
func TestOrderMessagingConfig(t *testing.T) {
	t.Parallel()
	def, err := orderMessagingConfig(nil)
	if err != nil || !reflect.DeepEqual(def.Outbox, (servicemain.Messaging{}).Defaults().Outbox) {
		t.Fatalf("defaults: %+v, %v", def.Outbox, err)
	}
	cfg, err := orderMessagingConfig([]string{"ORDER_OUTBOX_BATCH_SIZE=7", "PAYMENT_OUTBOX_BATCH_SIZE=9"})
	if err != nil || cfg.Outbox.BatchSize != 7 {
		t.Errorf("batch size %d, %v; want 7", cfg.Outbox.BatchSize, err)
	}
	if _, err := orderMessagingConfig([]string{"ORDER_OUTBOX_BATCH_SIZE=x"}); err == nil {
		t.Error("a bad setting was accepted")
	}
}
