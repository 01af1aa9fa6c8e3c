package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
)

// The processes whose CPU time the bench splits per order, as report.json names them.
var cpuProcs = []string{"order_service", "payment_service", "order_db", "payment_db", "kafka", "load_generator"}

// parseStatTicks returns utime + stime (fields 14 and 15, in clock ticks) of a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and may
// hold spaces and parentheses, so the fields are counted after the last ')'.
func parseStatTicks(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no command name", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("stat %q: %d fields after the command name, want at least 13", stat, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat %q: utime %q, stime %q not numbers", stat, f[11], f[12])
	}
	return utime + stime, nil
}

// clockTicks is the kernel's clock ticks per second (getconf CLK_TCK; 100 if
// that fails, the value on every Linux we know).
var clockTicks = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || n <= 0 {
		return 100
	}
	return n
}()

// cpuSample is the CPU time (ticks) used so far by each process of cpuProcs
// (summed over a service's replicas), and when it was read.
type cpuSample struct {
	at    time.Time
	ticks map[string]int64
}

// sampleCPU reads /proc/<pid>/stat of the stack's services, its servers and
// this process (a database cluster's nodes and proxy count as its database).
// It fails if a process is not running: a window with a process missing would
// not add up.
func sampleCPU(s *harness.Stack) (cpuSample, error) {
	pids := map[string][]int{"load_generator": {os.Getpid()}}
	for _, o := range s.Orders {
		pids["order_service"] = append(pids["order_service"], o.PID())
	}
	for _, p := range s.Payments {
		pids["payment_service"] = append(pids["payment_service"], p.PID())
	}
	servers := map[string][]string{"order_db": {harness.OrderDB}, "payment_db": {harness.PaymentDB}, "kafka": {harness.Kafka}}
	for name, db := range map[string]string{"order_db": harness.OrderDB, "payment_db": harness.PaymentDB} {
		if nodes := s.Infra.NodesOf(db); len(nodes) > 0 {
			servers[name] = append(nodes, db+"-proxy")
		}
	}
	for name, list := range servers {
		for _, server := range list {
			pid, err := s.Infra.PID(server)
			if err != nil {
				return cpuSample{}, fmt.Errorf("pid of %s: %w", server, err)
			}
			pids[name] = append(pids[name], pid)
		}
	}
	c := cpuSample{at: time.Now(), ticks: map[string]int64{}}
	for name, ps := range pids {
		for _, pid := range ps {
			if pid == 0 {
				return cpuSample{}, fmt.Errorf("%s is not running", name)
			}
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				return cpuSample{}, err
			}
			t, err := parseStatTicks(string(data))
			if err != nil {
				return cpuSample{}, err
			}
			c.ticks[name] += t
		}
	}
	return c, nil
}

// cpuSplit is the CPU milliseconds per completed order of each process between
// two samples, for orders completed in that window, on a machine of cpus CPUs
// with ticksPerS clock ticks per second. Processes missing from either sample
// count as 0.
func cpuSplit(a, b cpuSample, orders int, ticksPerS float64, cpus int) CPU {
	window := b.at.Sub(a.at).Seconds()
	c := CPU{WindowSec: round(window, 1), Orders: orders, PerOrderMs: map[string]float64{}}
	if orders <= 0 {
		return c
	}
	var total float64
	for _, name := range cpuProcs {
		ms := float64(b.ticks[name]-a.ticks[name]) / ticksPerS * 1000 / float64(orders)
		c.PerOrderMs[name] = round(ms, 2)
		total += ms
	}
	c.TotalMs = round(total, 2)
	c.AvailableMs = round(window*1000*float64(cpus)/float64(orders), 2)
	return c
}

// numCPU is the machine's CPU count, for CPU.AvailableMs.
var numCPU = runtime.NumCPU()
