package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Build compiles both services into dir (once per call) with the given build
// tags and returns the paths of the order and payment binaries. Without tags they
// are the production binaries (what `make bench` measures); the fault suite
// builds with "faults", which makes the services act on their *_FAULT_*
// switches (outbox.Faults and consumer.Faults).
func Build(dir string, tags ...string) (order, payment string, err error) {
	order, payment = filepath.Join(dir, "order"), filepath.Join(dir, "payment")
	for bin, pkg := range map[string]string{order: "./services/order", payment: "./services/payment"} {
		cmd := exec.Command("go", "build", "-tags", strings.Join(tags, ","), "-o", bin, pkg)
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	}
	return order, payment, nil
}

// Service is one service process. It can be started, killed, paused and started
// again any number of times; each start appends to the same log file.
type Service struct {
	// Name identifies the process in logs and reports, e.g. "payment-1".
	Name string
	// Bin is the executable.
	Bin string
	// Env is the process environment (the service's configuration).
	Env []string
	// HTTPAddr is where its /readyz answers once it is up.
	HTTPAddr string
	// Log is the file stdout and stderr go to.
	Log string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// PID returns the running process's id, or 0 if it is not running.
func (s *Service) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Start starts the process and waits up to 60 s until GET /readyz answers 200.
func (s *Service) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("%s is already running", s.Name)
	}
	log, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.Bin)
	cmd.Env = s.Env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = ownProcessGroup()
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(done) }()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("%s exited during start-up; see %s", s.Name, s.Log)
		default:
		}
		if ready(s.HTTPAddr) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within 60 s; see %s", s.Name, s.Log)
}

func ready(addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// signal sends sig to the running process and, if wait, waits until it exits.
func (s *Service) signal(sig os.Signal, wait bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("%s is not running", s.Name)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return err
	}
	if !wait {
		return nil
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	return nil
}

// Kill sends SIGKILL (no shutdown at all) and waits until the process is gone.
func (s *Service) Kill() error { return s.signal(os.Kill, true) }

// Stop sends SIGTERM, the way an orchestrator stops a container for a deploy,
// waits until the process exits, and returns how long the graceful stop took.
// It fails if the process exits with a non-zero status (a service whose stop
// exceeded its drain bound does) or is still running 60 s after the signal (it
// is then killed).
func (s *Service) Stop() (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0, fmt.Errorf("%s is not running", s.Name)
	}
	_ = s.cmd.Process.Signal(sigCont) // a paused process cannot stop
	start := time.Now()
	if err := s.cmd.Process.Signal(sigTerm); err != nil {
		return 0, err
	}
	cmd := s.cmd
	s.cmd = nil
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-s.done
		return time.Since(start), fmt.Errorf("%s still ran 60 s after SIGTERM: killed; see %s", s.Name, s.Log)
	}
	took := time.Since(start)
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return took, fmt.Errorf("%s exited with status %d after SIGTERM; see %s", s.Name, code, s.Log)
	}
	return took, nil
}

// Pause sends SIGSTOP; the process keeps its sockets but runs no code. (Not
// on Windows, which has no such signal: there it fails.)
func (s *Service) Pause() error { return s.signal(sigStop, false) }

// Resume sends SIGCONT to a paused process.
func (s *Service) Resume() error { return s.signal(sigCont, false) }

// Running reports whether the process is alive (it may be paused). A process
// that exited on its own (for example a fault hook that kills it) counts as not
// running, and Start may start it again.
func (s *Service) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		s.cmd = nil
		return false
	default:
		return true
	}
}

// FreeAddr returns a loopback address with a port that was free a moment ago
// and that it never returned before in this process.
func FreeAddr() (string, error) {
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		l.Close()
		if !handedOut[addr] {
			handedOut[addr] = true
			return addr, nil
		}
	}
}

// handedOut holds every address FreeAddr returned: stacks started at the same
// time (the fault suite beside the strategy comparison) never get the same port
// from the kernel's reuse of a port just closed.
var (
	handedOutMu sync.Mutex
	handedOut   = map[string]bool{}
)
