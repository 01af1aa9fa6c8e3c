package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/profile"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
)

// Profiles is what one step at the max sustained rate costs, seen from inside:
// each service's CPU profile over the step (its top functions by cumulative
// CPU; the raw profiles are written next to report.json) and each database's
// statements per completed order.
type Profiles struct {
	Rate   float64 `json:"offered_per_s"`
	Orders int     `json:"orders"`
	// Services maps order_service and payment_service to their top functions.
	Services map[string]ServiceProfile `json:"services"`
	// StatementsPerOrder maps order_db and payment_db to their Com_* counters'
	// increase per completed order (only counters that moved), and "total" to
	// their sum.
	StatementsPerOrder map[string]map[string]float64 `json:"statements_per_order"`
	// Step is the profiled step judged as the saga phase judges its steps: a
	// profiler that slows the services shows as a step that did not pass.
	Step Step `json:"step"`
}

// ServiceProfile is one service's CPU profile, summed over the step.
type ServiceProfile struct {
	File string `json:"file"`
	// CPUMsPerOrder is the profile's total CPU per completed order (it samples
	// the Go code only, so it reads a little below the CPU split's figure).
	CPUMsPerOrder float64    `json:"cpu_ms_per_order"`
	Top           []FuncCost `json:"top_cumulative"`
}

// FuncCost is a function's cumulative CPU: the share of the profile's samples
// whose stack holds it.
type FuncCost struct {
	Function string  `json:"function"`
	Share    float64 `json:"share"`
}

// profileTop is how many functions the report lists per service.
const profileTop = 25

// profileAtMax offers the max sustained rate for one step while it takes a
// CPU profile of each service (their DEBUG_ADDR) and counts each database's
// statements.
func profileAtMax(ctx context.Context, s *harness.Stack, r *Report) error {
	rate := r.Throughput.MaxSustained
	if rate <= 0 {
		return fmt.Errorf("no max sustained rate to profile at (run the saga phase, or pass -max-rate)")
	}
	say("profile: one %s step at %.0f orders/s with CPU profiles and statement counts", *stepDur, rate)
	procs := map[string]*harness.Service{"order_service": s.Orders[0], "payment_service": s.Payments[0]}
	dbs := map[string]string{"order_db": infra.OrderDBAddr(), "payment_db": infra.PaymentDBAddr()}
	before, err := comCounters(dbs)
	if err != nil {
		return err
	}
	seconds := int((*stepDur).Seconds())
	var wg sync.WaitGroup
	raw := make(map[string][]byte, len(procs))
	errs := make(map[string]error, len(procs))
	var mu sync.Mutex
	for name, svc := range procs {
		wg.Go(func() {
			b, err := cpuProfile(ctx, svc, seconds)
			mu.Lock()
			defer mu.Unlock()
			raw[name], errs[name] = b, err
		})
	}
	h := load(ctx, s, rate, *stepDur)
	wg.Wait()
	st, err := stepResult(ctx, s, rate, *stepDur, h)
	if err != nil {
		return err
	}
	after, err := comCounters(dbs)
	if err != nil {
		return err
	}
	p := Profiles{Rate: rate, Orders: st.completed, Services: map[string]ServiceProfile{}, Step: st,
		StatementsPerOrder: statementsPerOrder(before, after, st.completed)}
	for name := range procs {
		if errs[name] != nil {
			return fmt.Errorf("%s: %w", name, errs[name])
		}
		file := filepath.Join(outDir, "profile-"+name+".pb.gz")
		if err := os.WriteFile(file, raw[name], 0o644); err != nil {
			return err
		}
		sp, err := topCumulative(raw[name], profileTop)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		sp.File = file
		if st.completed > 0 {
			sp.CPUMsPerOrder = round(sp.CPUMsPerOrder/float64(st.completed), 3)
		}
		p.Services[name] = sp
	}
	r.Profiles = &p
	waitDrained(ctx, s, 60*time.Second)
	return ctx.Err()
}

// cpuProfile fetches a CPU profile of seconds from the service's profiler.
func cpuProfile(ctx context.Context, svc *harness.Service, seconds int) ([]byte, error) {
	addr := envValue(svc.Env, "_DEBUG_ADDR")
	if addr == "" {
		return nil, fmt.Errorf("%s runs without a *_DEBUG_ADDR", svc.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b, err
}

// envValue returns the value of the last variable in env whose name ends with
// suffix.
func envValue(env []string, suffix string) string {
	v := ""
	for _, kv := range env {
		if name, value, ok := strings.Cut(kv, "="); ok && strings.HasSuffix(name, suffix) {
			v = value
		}
	}
	return v
}

// topCumulative parses a CPU profile and returns its total CPU (ms, in
// CPUMsPerOrder until the caller divides it) and its n functions with the
// largest cumulative share. A function counts once per sample however often
// it recurs in the stack.
func topCumulative(raw []byte, n int) (ServiceProfile, error) {
	p, err := profile.ParseData(raw)
	if err != nil {
		return ServiceProfile{}, err
	}
	vi := len(p.SampleType) - 1 // cpu nanoseconds (the other is the sample count)
	cum := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		seen := map[string]bool{}
		for _, loc := range s.Location {
			for _, line := range loc.Line {
				if line.Function == nil || seen[line.Function.Name] {
					continue
				}
				seen[line.Function.Name] = true
				cum[line.Function.Name] += v
			}
		}
	}
	sp := ServiceProfile{CPUMsPerOrder: float64(total) / 1e6}
	if total == 0 {
		return sp, nil
	}
	for f, v := range cum {
		sp.Top = append(sp.Top, FuncCost{Function: f, Share: round(float64(v)/float64(total), 3)})
	}
	sort.Slice(sp.Top, func(i, j int) bool {
		if sp.Top[i].Share != sp.Top[j].Share {
			return sp.Top[i].Share > sp.Top[j].Share
		}
		return sp.Top[i].Function < sp.Top[j].Function
	})
	if len(sp.Top) > n {
		sp.Top = sp.Top[:n]
	}
	return sp, nil
}

// comCounters reads the Com_* status counters of each database server.
func comCounters(dbs map[string]string) (map[string]map[string]int64, error) {
	out := map[string]map[string]int64{}
	for name, addr := range dbs {
		db, err := sql.Open("mysql", testenv.DSN(addr, ""))
		if err != nil {
			return nil, err
		}
		rows, err := db.Query("SHOW GLOBAL STATUS LIKE 'Com\\_%'")
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		counters := map[string]int64{}
		for rows.Next() {
			var k string
			var v int64
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				db.Close()
				return nil, err
			}
			counters[strings.TrimPrefix(k, "Com_")] = v
		}
		err = rows.Err()
		rows.Close()
		db.Close()
		if err != nil {
			return nil, err
		}
		out[name] = counters
	}
	return out, nil
}

// statementsPerOrder is each server's counter increases divided by orders
// (counters that did not move are left out), with their sum as "total".
func statementsPerOrder(before, after map[string]map[string]int64, orders int) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	if orders == 0 {
		return out
	}
	for db, counters := range after {
		m := map[string]float64{}
		var total int64
		for k, v := range counters {
			if d := v - before[db][k]; d > 0 {
				if k == "show_status" { // the bench's own reads
					continue
				}
				m[k] = round(float64(d)/float64(orders), 2)
				total += d
			}
		}
		m["total"] = round(float64(total)/float64(orders), 2)
		out[db] = m
	}
	return out
}
