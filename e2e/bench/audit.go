// The audit phase: what the delivery auditor (ADR 0069) costs the saga, as
// its max sustained rate and CPU per order with the auditor on and off.

package main

import (
	"context"
	"fmt"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/pkg/audit"
)

// Audit is the saga's max sustained rate and CPU-ms per order with the
// delivery auditor on (at the services' default pacing) and off
// (*_AUDIT_DISABLED=true): each the median of -repeats searches, the two
// modes alternating.
type Audit struct {
	RateOn  float64 `json:"rate_on"`
	RateOff float64 `json:"rate_off"`
	// RateOnVsOff is RateOn / RateOff: the goal saga_audit_on_vs_off.
	RateOnVsOff float64 `json:"rate_on_vs_off"`
	// CPUMsPerOrderOn and Off are every process's CPU per completed order
	// (CPU.TotalMs) at each mode's max.
	CPUMsPerOrderOn  float64   `json:"cpu_ms_per_order_on"`
	CPUMsPerOrderOff float64   `json:"cpu_ms_per_order_off"`
	On               AuditMode `json:"on"`
	Off              AuditMode `json:"off"`
}

// AuditMode is one mode of the audit phase: the settings both services ran
// with, its searches in the order they ran, and the CPU split of the passing
// step at the max of the search whose result is the median.
type AuditMode struct {
	Env     []string `json:"env"`
	Repeats []Repeat `json:"repeats"`
	CPU     CPU      `json:"cpu"`
}

// auditorEnv is both services' auditor settings: its default interval and
// settle (the harness paces it at 1 s / 2 s for the tests; every bench stack
// runs it as in production), and for off, switched off. The switch is the
// only difference between the audit phase's modes.
func auditorEnv(on bool) []string {
	d := audit.Settings{}.Defaults()
	var env []string
	for _, svc := range []string{"ORDER_", "PAYMENT_"} {
		env = append(env, svc+"AUDIT_INTERVAL="+d.Interval.String(), svc+"AUDIT_SETTLE="+d.Settle.String())
		if !on {
			env = append(env, svc+"AUDIT_DISABLED=true")
		}
	}
	return env
}

// audit searches the saga's max sustained rate -repeats times per mode,
// alternating on, off, on, off, … so that a drift of the machine weighs on
// both alike. Each search gets a new stack (auditSearch), so that every
// search starts alike and the mode not measured has no process on the cores.
//
// The bracket: the auditor should move the max by about 10%, so every search
// starts from narrowBracket (±12.5%) around the saga phase's result, if that
// phase ended ok (about 4 steps a search instead of about 7 from [50, 100];
// search widens a bracket that is wrong). Without it, the first search starts
// from the saga phase's own [50, 100] and the others from around its result.
// All searches but that one start from the same bracket, so both modes'
// results lie on the same grid of rates.
func (b *bench) audit(ctx context.Context, r *Report) error {
	b.stacks.closeAll() // as the outage phase: the saga stack would idle on the cores
	lo, hi := 50.0, 100.0
	anchored := false
	if st, _ := r.phase("saga"); st == statusOK {
		lo, hi = narrowBracket(r.Throughput.MaxSustained)
		anchored = true
	}
	a := &r.Audit
	a.On.Env, a.Off.Env = auditorEnv(true), auditorEnv(false)
	say("audit: saga throughput with the auditor on and off, %d searches each, from [%.0f, %.0f]", *repeats, lo, hi)
	for i := range *repeats {
		for _, m := range []struct {
			on   bool
			mode *AuditMode
		}{{true, &a.On}, {false, &a.Off}} {
			label := fmt.Sprintf("auditor %s, repeat %d", onOff(m.on), i+1)
			rp, err := b.auditSearch(ctx, label, m.on, m.mode.Env, lo, hi)
			m.mode.Repeats = append(m.mode.Repeats, rp)
			if err != nil {
				return err
			}
			if !anchored {
				lo, hi = narrowBracket(rp.Result)
				anchored = true
			}
		}
	}
	a.RateOn, a.On.CPU = medianMax(a.On.Repeats)
	a.RateOff, a.Off.CPU = medianMax(a.Off.Repeats)
	a.CPUMsPerOrderOn, a.CPUMsPerOrderOff = a.On.CPU.TotalMs, a.Off.CPU.TotalMs
	return ctx.Err()
}

// auditSearch is one search (searchOnce) from [lo, hi] on a new stack whose
// services run with env; then it checks that the mode took effect
// (checkAuditor) and closes the stack.
func (b *bench) auditSearch(ctx context.Context, label string, on bool, env []string, lo, hi float64) (Repeat, error) {
	orderBin, paymentBin, err := b.binaries()
	if err != nil {
		return Repeat{}, err
	}
	s, err := newStack(ctx, infra, orderBin, paymentBin, "audit_"+onOff(on), env...)
	if err != nil {
		return Repeat{}, err
	}
	b.stacks.add(s)
	defer s.Close()
	rp, err := searchOnce(ctx, s, label, lo, hi)
	if err == nil {
		err = checkAuditor(ctx, s, on)
	}
	return rp, err
}

// checkAuditor fails unless the auditors ran in both services (each check
// that runs a pass writes its cursor) with on, or, with off, left no cursor
// and no receipt: a setting the services did not read would otherwise
// compare the auditor with itself.
func checkAuditor(ctx context.Context, s *harness.Stack, on bool) error {
	var orderCursors, receipts, paymentCursors int
	err := s.OrderDB.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM audit_cursors), (SELECT COUNT(*) FROM audit_receipts)").Scan(&orderCursors, &receipts)
	if err == nil {
		err = s.PaymentDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM audit_cursors").Scan(&paymentCursors)
	}
	switch {
	case err != nil:
		return fmt.Errorf("reading the auditors' tables: %w", err)
	case on && (orderCursors == 0 || paymentCursors == 0):
		return fmt.Errorf("auditor on, but it ran no pass: %d cursors in the order database, %d in the payment database", orderCursors, paymentCursors)
	case !on && orderCursors+paymentCursors+receipts > 0:
		return fmt.Errorf("auditor off, but it left %d cursors and %d receipts in the order database, %d cursors in the payment database",
			orderCursors, receipts, paymentCursors)
	}
	return nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
