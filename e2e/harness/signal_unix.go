//go:build unix

package harness

import (
	"os"
	"syscall"
)

// The signals a Service sends besides SIGKILL (os.Kill).
var (
	sigTerm os.Signal = syscall.SIGTERM
	sigStop os.Signal = syscall.SIGSTOP
	sigCont os.Signal = syscall.SIGCONT
)

// ownProcessGroup starts a service in its own process group, so that a Ctrl-C
// meant for the test run does not reach it: the harness alone decides when a
// service stops.
func ownProcessGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
