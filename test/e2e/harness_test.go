package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/container/docker"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/pki"
	"github.com/eddy-faas/eddy/internal/testenv"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// eddyBin is the eddy binary built once for the package; nativeCode is
// testdata/native, a static actionloop executable, in base64 (as a client
// sends a binary action).
var eddyBin, nativeCode string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eddy-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	eddyBin = filepath.Join(dir, "eddy")
	native := exec.Command("go", "build", "-o", filepath.Join(dir, "native"), "./testdata/native")
	native.Env = append(os.Environ(), "CGO_ENABLED=0")
	native.Stdout, native.Stderr = os.Stdout, os.Stderr
	if err := native.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the native test action:", err)
		os.Exit(1)
	}
	nb, err := os.ReadFile(filepath.Join(dir, "native"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nativeCode = base64.StdEncoding.EncodeToString(nb)
	// The binary under test is built with the race detector: every
	// end-to-end run is also a race test of the whole platform.
	build := exec.Command("go", "build", "-race", "-o", eddyBin, "../../cmd/eddy")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building eddy:", err)
		os.Exit(1)
	}
	var why string
	backends, why = availableBackends()
	fmt.Fprintf(os.Stderr, "e2e: backends %v%s\n", backends, why)
	if os.Getenv("EDDY_REQUIRE_DOCKER") == "1" && !slices.Contains(backends, "docker") {
		fmt.Fprintln(os.Stderr, "e2e: EDDY_REQUIRE_DOCKER=1 but the Docker backend is not usable"+why)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// backends are the container backends the suite runs against: process
// always, docker when the daemon answers and the runtime images are built.
var backends []string

func availableBackends() ([]string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, err := docker.Dial(ctx, "", 2*time.Second)
	if err != nil {
		return []string{"process"}, fmt.Sprintf(" (docker: %v)", err)
	}
	defer cli.Close()
	missing, err := docker.MissingImages(ctx, cli, manifest.Default().Images())
	if err != nil || len(missing) > 0 {
		return []string{"process"}, fmt.Sprintf(" (docker: images missing %v %v; run `make runtimes`)", missing, err)
	}
	return []string{"process", "docker"}, ""
}

// forBackends runs fn as a subtest per backend.
func forBackends(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { fn(t, b) })
	}
}

// dockerOnly skips unless the Docker backend is usable.
func dockerOnly(t *testing.T) {
	if !slices.Contains(backends, "docker") {
		t.Skip("the Docker backend is not usable here (see the e2e: line at the start of the run)")
	}
}

// eddy is one running `eddy standalone`.
type eddy struct {
	t       *testing.T
	Backend string
	URL     string
	DataDir string
	cmd     *exec.Cmd
	out     *testenv.Buffer
	done    chan struct{}
	args    []string
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEddy starts a standalone Eddy on a free port with a fresh data dir
// (or dataDir when given) and extra flags, and stops it at test end.
func startEddy(t *testing.T, backend, dataDir string, extra ...string) *eddy {
	t.Helper()
	return startEddyBin(t, eddyBin, backend, dataDir, extra...)
}

// startEddyBin is startEddy of another eddy binary.
func startEddyBin(t *testing.T, bin, backend, dataDir string, extra ...string) *eddy {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	port := freePort(t)
	args := append([]string{"standalone", "--port", fmt.Sprint(port), "--data-dir", dataDir, "--backend", backend}, extra...)
	e := &eddy{t: t, Backend: backend, URL: fmt.Sprintf("http://127.0.0.1:%d", port), DataDir: dataDir, out: &testenv.Buffer{}, args: args}
	e.cmd = exec.Command(bin, args...)
	// The binary is built with -race, and so is every runtime server it
	// starts on the process backend ("eddy runtime"): the race detector
	// sleeps 1 s at exit by default, which made each container's removal
	// take a second here that it does not take in a normal build.
	e.cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.done = make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(e.done) }()
	t.Cleanup(func() {
		e.stop()
		if strings.Contains(e.out.String(), "WARNING: DATA RACE") {
			t.Errorf("the race detector found a data race in eddy")
		}
		if t.Failed() {
			t.Logf("eddy output:\n%s", e.out.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-e.done:
			t.Fatalf("eddy exited during start-up:\n%s", e.out.String())
		default:
		}
		resp, err := http.Get(e.URL + "/api/v1")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("eddy did not answer within 60 s:\n%s", e.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit (SIGKILL after 30 s).
func (e *eddy) stop() {
	select {
	case <-e.done:
		return
	default:
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(30 * time.Second):
		e.t.Errorf("eddy did not stop within 30 s of SIGTERM")
		_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
		<-e.done
	}
}

// exitCode is the process's exit status after stop.
func (e *eddy) exitCode() int { return e.cmd.ProcessState.ExitCode() }

const guestAuth = whisk.GuestUUID + ":" + whisk.GuestKey

// call does an API request with the guest key and decodes a JSON answer.
func (e *eddy) call(method, path string, body any) (int, http.Header, []byte) {
	return e.callAuth(guestAuth, method, path, body)
}

func (e *eddy) callAuth(auth, method, path string, body any) (int, http.Header, []byte) {
	e.t.Helper()
	resp := e.do(auth, method, path, body)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, out
}

// do sends an API request with auth (none when "") and a body (JSON but
// for []byte and string) and returns the answer, whose body the caller
// closes.
func (e *eddy) do(auth, method, path string, body any) *http.Response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		u, p, _ := strings.Cut(auth, ":")
		req.SetBasicAuth(u, p)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// mustCall is call that fails the test on an unexpected status.
func (e *eddy) mustCall(want int, method, path string, body any) []byte {
	e.t.Helper()
	code, _, out := e.call(method, path, body)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, code, want, out)
	}
	return out
}

// createAction PUTs an action of kind with code.
func (e *eddy) createAction(name, kind, code string, limits map[string]any) {
	e.t.Helper()
	body := map[string]any{"exec": map[string]any{"kind": kind, "code": code}}
	if limits != nil {
		body["limits"] = limits
	}
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/"+name, body)
}

// activation fetches a record, waiting for it to be stored.
func (e *eddy) activation(id string) whisk.Activation {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, out := e.call("GET", "/api/v1/namespaces/_/activations/"+id, nil)
		if code == 200 {
			var a whisk.Activation
			if err := json.Unmarshal(out, &a); err != nil {
				e.t.Fatalf("record %s: %v", out, err)
			}
			return a
		}
		if code != 404 || time.Now().After(deadline) {
			e.t.Fatalf("GET activation %s: %d %s", id, code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// etcdEndpoint is the embedded etcd's client URL, which standalone writes to its data dir.
func (e *eddy) etcdEndpoint() string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.DataDir, "etcd", "endpoint"))
	if err != nil {
		e.t.Fatalf("etcd endpoint file: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// etcdTLS is the client side of the credentials standalone keeps in its
// data dir: its embedded etcd accepts no other client.
func (e *eddy) etcdTLS() *tls.Config {
	e.t.Helper()
	tc, err := pki.In(filepath.Join(e.DataDir, "tls"), "standalone").Config()
	if err != nil {
		e.t.Fatalf("standalone's TLS credentials: %v", err)
	}
	return tc
}

// etcdClient dials the standalone's embedded etcd with its client
// certificate; it is closed when the test ends.
func (e *eddy) etcdClient(ctx context.Context) *cluster.Client {
	e.t.Helper()
	c, err := cluster.DialTLS(ctx, []string{e.etcdEndpoint()}, e.etcdTLS(), slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// liveParents maps the pid of every live (not zombie) process to its
// parent's, from /proc.
func liveParents() map[int]int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		var pid int
		if _, err := fmt.Sscanf(ent.Name(), "%d", &pid); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		var state string
		var ppid int
		fmt.Sscanf(s[i+2:], "%s %d", &state, &ppid)
		if state != "Z" {
			parent[pid] = ppid
		}
	}
	return parent
}

// descendants lists the pids of every live process below eddy in the process tree.
func (e *eddy) descendants() []int {
	parent := liveParents()
	var out []int
	for pid := range parent {
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == e.cmd.Process.Pid {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// runCLI runs the eddy CLI with a wskprops file pointing at e.
func (e *eddy) runCLI(ctx context.Context, props string, args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.CommandContext(ctx, eddyBin, args...)
	cmd.Env = append(os.Environ(), "WSK_CONFIG_FILE="+props)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			e.t.Fatalf("eddy %v: %v", args, err)
		}
	}
	return so.String(), se.String(), code
}

// pidAlive reports whether a process exists (and is not a zombie).
func pidAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && !strings.HasPrefix(s[i+2:], "Z")
}

// scanLines returns the lines of s.
//
//lint:ignore U1000 a harness helper for tests that read a command's output line by line
func scanLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// runtimeIdentity is what an action returns to say which container ran it:
// the host name (a container's id on Docker) and the pid.
const identityPy = "import os, socket\ndef main(args):\n    return {'pid': os.getpid(), 'host': socket.gethostname()}\n"

// ranBy is the decoded identity result.
type ranBy struct {
	Pid  int    `json:"pid"`
	Host string `json:"host"`
}

func (r ranBy) String() string { return fmt.Sprintf("%s/%d", r.Host, r.Pid) }

// containers lists the live action containers of this eddy's backend: pids
// of runtime processes below eddy (process) or container ids (docker).
func (e *eddy) containers() []string {
	e.t.Helper()
	if e.Backend == "docker" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cli, err := docker.Dial(ctx, "", 5*time.Second)
		if err != nil {
			e.t.Fatal(err)
		}
		defer cli.Close()
		owner, err := os.ReadFile(filepath.Join(e.DataDir, "container-owner"))
		if err != nil {
			e.t.Fatal(err)
		}
		ids, err := docker.Owned(ctx, cli, strings.TrimSpace(string(owner)))
		if err != nil {
			e.t.Fatal(err)
		}
		return ids
	}
	var out []string
	for _, pid := range e.descendants() {
		out = append(out, fmt.Sprint(pid))
	}
	return out
}

// gone reports whether the container that returned r no longer runs.
func (e *eddy) gone(r ranBy) bool {
	if e.Backend == "docker" {
		for _, id := range e.containers() {
			if strings.HasPrefix(id, r.Host) {
				return false
			}
		}
		return true
	}
	return !pidAlive(r.Pid)
}

// sharedFile is an empty file every action may append to: a root
// standalone's process backend runs each container as a uid of its own,
// which cannot reach a t.TempDir (0700). The file is made here, 0666, in a
// 0777 directory that is not sticky (the kernel's protected_regular
// refuses an O_CREAT open of another user's file in a sticky one).
// Removed when the test ends.
func sharedFile(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "eddy-e2e-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{dir: 0o777, path: 0o666} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	return path
}
