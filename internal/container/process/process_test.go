package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
)

// runtimeBin is eddy-runtime, built once for these tests.
var runtimeBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "eddy-process-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		runtimeBin = filepath.Join(dir, "eddy-runtime")
		build := exec.Command("go", "build", "-o", runtimeBin, "github.com/eddy-faas/eddy/cmd/eddy-runtime")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build eddy-runtime: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}())
}

func newBackend(t *testing.T, command ...string) *Backend {
	t.Helper()
	if len(command) == 0 {
		command = []string{runtimeBin}
	}
	b, err := New(Config{Command: command, WorkRoot: workRoot(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// workRoot is a new temporary directory that other users may traverse
// (t.TempDir and its parent are 0700), as a work root must be when the
// backend isolates.
func workRoot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// alive says whether pid exists and is not a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !alive(pid) {
			return
		}
	}
	t.Errorf("process %d is still alive", pid)
}

func collect(t *testing.T, c container.Container) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	logs, _, complete := container.CollectLogs(ctx, c.Logs(), 1<<20)
	if !complete {
		t.Fatalf("sentinels missing; logs so far: %q", logs)
	}
	return logs
}

func contains(logs []string, s string) bool {
	for _, l := range logs {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

const pyAction = `import os, sys
def main(args):
    print("hi", args["name"])
    print("warning", file=sys.stderr)
    return {"pid": os.getpid(), "ppid": os.getppid(), "apihost": os.environ.get("__OW_API_HOST"),
            "activation": os.environ.get("__OW_ACTIVATION_ID"), "home": os.getcwd()}
`

func TestCreateRunRemove(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found")
	}
	b := newBackend(t)
	ctx := context.Background()
	c, err := b.Create(ctx, container.Spec{Name: "guest_hello", Kind: "python:3.11", Launcher: "python",
		Env: map[string]string{"__OW_API_HOST": "http://api.test"}})
	if err != nil {
		t.Fatal(err)
	}
	pc := c.(*Container)
	dir := pc.dir
	cl := container.NewClient(c.Addr())
	defer cl.Close()

	resp, err := cl.Init(ctx, container.InitRequest{Name: "hello", Main: "main", Code: pyAction})
	if err != nil || resp.Status != 200 {
		t.Fatalf("init: %v %d %s", err, resp.Status, resp.Body)
	}
	// A successful /init writes no sentinels: its output is the first run's.
	resp, err = cl.Run(ctx, container.RunRequest{Value: json.RawMessage(`{"name":"Eddy"}`), ActivationID: "abc123",
		Namespace: "guest", ActionName: "/guest/hello", Deadline: "9999999999999"})
	if err != nil || resp.Status != 200 {
		t.Fatalf("run: %v %d %s", err, resp.Status, resp.Body)
	}
	var res struct {
		Pid, Ppid           int
		APIHost, Activation string
	}
	if err := json.Unmarshal(resp.Body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Ppid != pc.Pid() || res.APIHost != "http://api.test" || res.Activation != "abc123" {
		t.Errorf("result %s (runtime pid %d)", resp.Body, pc.Pid())
	}
	logs := collect(t, c)
	if !contains(logs, "stdout: hi Eddy") || !contains(logs, "stderr: warning") {
		t.Errorf("logs %q", logs)
	}

	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after Remove")
	}
	if code := c.Exit().Code; code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0 (clean shutdown)", code)
	}
	waitGone(t, pc.Pid())
	waitGone(t, res.Pid)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("work dir still there: %v", err)
	}
	if err := c.Remove(ctx); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	// The runtime is gone: no HTTP answer, and the client says so.
	if _, err := cl.Run(ctx, container.RunRequest{}); !container.IsTransport(err) {
		t.Errorf("run on a removed container: %v, want a transport error", err)
	}
	// Logs is closed once the output is drained.
	for range c.Logs() {
	}
}

const bashLoop = `#!/bin/bash
n=0
while read -r line; do
  n=$((n+1))
  echo "out $n"
  echo "err $n" >&2
  sleep 60 &
  echo "{\"n\": $n, \"sleeper\": $!}" >&3
done
`

func TestLogsFlowAndGroupKill(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	c, err := b.Create(ctx, container.Spec{Name: "guest_loop", Launcher: "native"})
	if err != nil {
		t.Fatal(err)
	}
	cl := container.NewClient(c.Addr())
	defer cl.Close()
	if resp, err := cl.Init(ctx, container.InitRequest{Code: bashLoop}); err != nil || resp.Status != 200 {
		t.Fatalf("init: %v %+v", err, resp)
	}
	// A successful /init writes no sentinels: its output is the first run's.
	var sleepers []int
	for i := 1; i <= 3; i++ {
		resp, err := cl.Run(ctx, container.RunRequest{ActivationID: fmt.Sprint(i)})
		if err != nil || resp.Status != 200 {
			t.Fatalf("run %d: %v %+v", i, err, resp)
		}
		var res struct{ N, Sleeper int }
		_ = json.Unmarshal(resp.Body, &res)
		sleepers = append(sleepers, res.Sleeper)
		logs := collect(t, c)
		if len(logs) != 2 || !contains(logs, fmt.Sprintf("stdout: out %d", i)) || !contains(logs, fmt.Sprintf("stderr: err %d", i)) {
			t.Errorf("run %d logs %q", i, logs)
		}
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	// Background processes of the action die with the process group.
	for _, pid := range sleepers {
		waitGone(t, pid)
	}
}

func TestCloseRemovesAll(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	var pids []int
	var dirs []string
	for i := range 3 {
		c, err := b.Create(ctx, container.Spec{Name: fmt.Sprint("c", i), Launcher: "native"})
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, c.(*Container).Pid())
		dirs = append(dirs, c.(*Container).dir)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i, pid := range pids {
		waitGone(t, pid)
		if _, err := os.Stat(dirs[i]); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("work dir %s still there", dirs[i])
		}
	}
	if _, err := b.Create(ctx, container.Spec{Name: "late", Launcher: "native"}); err == nil {
		t.Error("Create after Close succeeded")
	}
}

func TestCrashingRuntime(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, "/bin/sh", "-c", "echo 'runtime failed: boom' >&2; exit 3")
	_, err := b.Create(ctx, container.Spec{Name: "x", Launcher: "native"})
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "code 3") {
		t.Errorf("crashing runtime: %v", err)
	}

	_, err = newBackend(t).Create(ctx, container.Spec{Name: "y", Launcher: "cobol"})
	if err == nil || !strings.Contains(err.Error(), "unknown launcher") {
		t.Errorf("unknown launcher: %v", err)
	}

	// A runtime that never says where it listens is stopped when ctx ends.
	b = newBackend(t, "/bin/sh", "-c", "exec sleep 60")
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := b.Create(cctx, container.Spec{Name: "z", Launcher: "native"}); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent runtime: %v", err)
	}
	b.mu.Lock()
	n := len(b.live)
	b.mu.Unlock()
	if n != 0 {
		t.Errorf("%d containers left after failed creations", n)
	}
}

func TestRuntimeExitIsSeen(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	c, err := b.Create(ctx, container.Spec{Name: "dies", Launcher: "native"})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range c.Logs() {
		}
	}()
	_ = syscall.Kill(c.(*Container).Pid(), syscall.SIGKILL)
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed")
	}
	if code := c.Exit().Code; code != 128+9 {
		t.Errorf("exit code %d, want 137", code)
	}
	if err := c.Remove(ctx); err != nil {
		t.Error(err)
	}
}
