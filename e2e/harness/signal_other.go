//go:build !unix

package harness

import (
	"os"
	"syscall"
)

// The harness runs its servers through deploy/local/infra.sh and controls the
// services with POSIX signals, so the e2e suite runs on Unix only. On other
// systems (Windows) it still compiles, so that `go build ./...` and `go vet
// ./...` pass there: Kill works (os.Kill), while Stop, Pause and Resume fail
// with the error Process.Signal returns for a signal the system cannot send.
var (
	sigTerm os.Signal = unsupported("SIGTERM")
	sigStop os.Signal = unsupported("SIGSTOP")
	sigCont os.Signal = unsupported("SIGCONT")
)

// unsupported is a signal this system cannot send.
type unsupported string

func (s unsupported) String() string { return string(s) }
func (unsupported) Signal()          {}

// ownProcessGroup is nil here: no process group is needed where the suite does
// not run.
func ownProcessGroup() *syscall.SysProcAttr { return nil }
