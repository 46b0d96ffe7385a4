package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// standalone is an `eddy standalone` started by the bench.
type standalone struct {
	url       string
	debugAddr string // its --debug-addr: pprof, for the Go heap
	dataDir   string
	keep      bool
	cmd       *exec.Cmd
	out       *tailBuffer
	done      chan struct{}
}

// Settings of the started Eddy that differ from standalone's defaults, and why:
//   - invocations per minute: the rate limit (1200/min) would stop a
//     throughput run in a second;
//   - invoker memory: room for 100 containers of the benchmark's memory, so
//     the namespace limit (100), not memory, bounds scale-out;
//   - queue idle timeout: the many-actions scenario must still hold every
//     queue when it measures;
//   - log level warn: logging is not what is measured;
//   - debug address: the many-actions scenario reads the Go heap from it;
//   - prewarm: one stem cell of the benchmark's kind at a memory one MB off
//     the benchmark's (see prewarmMemory), so that the cold-start scenario
//     measures fresh actions with and without a stem cell, and the other
//     scenarios' actions never take one.
func standaloneArgs(cfg config, port int, dataDir, debugAddr string) []string {
	return []string{
		"standalone",
		"--port", fmt.Sprint(port), "--host", "127.0.0.1",
		"--data-dir", dataDir, "--backend", cfg.backend,
		"--invocations-per-minute", "100000000",
		"--namespace-containers", "100",
		"--invoker-memory", fmt.Sprint(100 * cfg.memoryMB),
		"--container-idle-timeout", cfg.idle.String(),
		"--queue-idle-timeout", "30m",
		"--log-level", "warn",
		"--debug-addr", debugAddr,
		"--prewarm", fmt.Sprintf("%s:%d:1", cfg.kind, prewarmMemory(cfg)),
	}
}

func startStandalone(ctx context.Context, cfg config, stderr io.Writer) (*standalone, error) {
	return startStandaloneWith(ctx, cfg, stderr)
}

// startStandaloneWith is startStandalone with some flags' values replaced
// (pairs: flag, value).
func startStandaloneWith(ctx context.Context, cfg config, stderr io.Writer, override ...string) (*standalone, error) {
	dataDir, err := os.MkdirTemp("", "eddy-bench-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	debugPort, err := freePort()
	if err != nil {
		return nil, err
	}
	debugAddr := fmt.Sprintf("127.0.0.1:%d", debugPort)
	args := standaloneArgs(cfg, port, dataDir, debugAddr)
	for i := 0; i+1 < len(override); i += 2 {
		for j := 0; j+1 < len(args); j++ {
			if args[j] == override[i] {
				args[j+1] = override[i+1]
			}
		}
	}
	s := &standalone{
		url: fmt.Sprintf("http://127.0.0.1:%d", port), debugAddr: debugAddr, dataDir: dataDir, keep: cfg.keep,
		out: &tailBuffer{max: 64 << 10}, done: make(chan struct{}),
	}
	s.cmd = exec.Command(cfg.eddyPath, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dataDir)
		return nil, fmt.Errorf("starting %s: %w", cfg.eddyPath, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.done:
			s.stop(stderr)
			return nil, fmt.Errorf("eddy standalone exited during start-up:\n%s", s.tail())
		case <-ctx.Done():
			s.stop(stderr)
			return nil, ctx.Err()
		default:
		}
		resp, err := http.Get(s.url + "/api/v1")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop(stderr)
			return nil, fmt.Errorf("eddy standalone did not answer within 60 s:\n%s", s.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *standalone) pid() int { return s.cmd.Process.Pid }

func (s *standalone) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *standalone) tail() string { return s.out.String() }

// etcdEndpoint is the embedded etcd's client URL, which standalone writes to its data dir.
func (s *standalone) etcdEndpoint() (string, error) {
	b, err := os.ReadFile(filepath.Join(s.dataDir, "etcd", "endpoint"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// stop sends SIGTERM, waits for the exit (SIGKILL to the group after 30 s)
// and removes the data dir unless asked to keep it.
func (s *standalone) stop(stderr io.Writer) {
	if !s.exited() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			fmt.Fprintln(stderr, "eddy bench: eddy did not stop within 30 s of SIGTERM; killing it")
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	}
	if s.keep {
		_ = os.WriteFile(filepath.Join(s.dataDir, "eddy.log"), []byte(s.tail()), 0o644)
		fmt.Fprintf(stderr, "eddy bench: kept %s\n", s.dataDir)
		return
	}
	os.RemoveAll(s.dataDir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
