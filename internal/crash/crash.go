//go:build faults

// Package crash kills the process on purpose, for the fault-injection build's
// crash switches; it is compiled only with -tags faults.
package crash

import (
	"os"
	"sync/atomic"
)

// Every returns a function that kills the process (SIGKILL: no deferred
// function, no shutdown) on its n-th call, and never returns from that call.
func Every(n int) func() {
	var calls atomic.Int64
	return func() {
		if calls.Add(1) == int64(n) {
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				_ = p.Kill()
			}
			select {} // never return: the signal is on its way
		}
	}
}
