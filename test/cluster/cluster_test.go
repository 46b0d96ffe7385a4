// Package cluster_test runs a whole Eddy cluster on this machine through
// deploy/cluster.sh — three `eddy etcd` members, eddy-kafka-dev, a private
// PostgreSQL, two controllers, three schedulers and two invokers, each a
// real process on loopback — and drives it through both controllers'
// REST APIs and `eddy status`. It needs the PostgreSQL server binaries; it
// skips without them unless EDDY_REQUIRE_POSTGRES=1.
package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/pki"
	"github.com/eddy-faas/eddy/internal/whisk"
)

const guestAuth = whisk.GuestUUID + ":" + whisk.GuestKey

// helloScript is a native action (actionloop: a JSON line in on stdin, a
// JSON line out on fd 3); it needs only bash on the process backend.
const helloScript = `#!/bin/bash
while read -r line; do
  name=$(printf '%s' "$line" | sed -n 's/.*"name": *"\([^"]*\)".*/\1/p')
  echo "native log $name"
  printf '{"greeting": "Hello %s"}\n' "$name" >&3
done
`

func TestLocalCluster(t *testing.T) {
	requirePostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	binDir := t.TempDir()
	for _, b := range []string{"eddy", "eddy-kafka-dev"} {
		build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(binDir, b), "./cmd/"+b)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b, err, out)
		}
	}
	eddyBin := filepath.Join(binDir, "eddy")

	// The run dir must be reachable by the postgres user when we are root:
	// not under t.TempDir() (mode 0700).
	runDir, err := os.MkdirTemp("", "eddy-cluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	base := freeBase(t)
	p1, p2 := base+ctlPort1, base+ctlPort2
	env := clusterEnv(runDir, binDir, base, p1, p2)
	script := filepath.Join(root, "deploy", "cluster.sh")
	runScript := func(arg string) (string, error) {
		cmd := exec.Command(script, arg)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	var pids []int // every process the script started, read before stop
	t.Cleanup(func() {
		if len(pids) == 0 {
			pids = readPids(runDir)
		}
		out, err := runScript("stop")
		if err != nil {
			t.Errorf("cluster.sh stop: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
		for _, pid := range pids {
			if alive(pid) {
				t.Errorf("process %d still runs after cluster.sh stop", pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if left := processesUnder(binDir, runDir); len(left) > 0 {
			t.Errorf("processes left behind: %v", left)
		}
		if t.Failed() {
			for _, name := range []string{"controller1", "controller2", "scheduler1", "scheduler2", "scheduler3", "invoker1", "invoker2", "kafka", "etcd1"} {
				if b, err := os.ReadFile(filepath.Join(runDir, name+".log")); err == nil {
					t.Logf("---- %s.log (tail)\n%s", name, tail(string(b), 3000))
				}
			}
		}
		os.RemoveAll(runDir)
	})

	start := time.Now()
	if out, err := runScript("start"); err != nil {
		t.Fatalf("cluster.sh start: %v\n%s", err, out)
	}
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
	pids = readPids(runDir)
	if len(pids) != 12 { // 11 processes of ours and postgres
		t.Fatalf("pid files: %d, want 12 (%v)", len(pids), pids)
	}

	ctl1 := api{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", p1)}
	ctl2 := api{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", p2)}

	// Create through controller 1; both see it (one PostgreSQL).
	ctl1.must(200, "PUT", "/api/v1/namespaces/_/actions/hello", map[string]any{"exec": map[string]any{"kind": "native", "code": helloScript}})
	ctl2.must(200, "GET", "/api/v1/namespaces/_/actions/hello?code=false", nil)

	// Blocking through both controllers.
	for i, c := range []api{ctl1, ctl2, ctl1, ctl2} {
		name := fmt.Sprintf("b%d", i)
		out := c.must(200, "POST", "/api/v1/namespaces/_/actions/hello?blocking=true&result=true", map[string]any{"name": name})
		if want := `{"greeting":"Hello ` + name + `"}`; strings.TrimSpace(string(out)) != want {
			t.Fatalf("blocking through %s: %s, want %s", c.base, out, want)
		}
	}
	// Non-blocking through both; each record is readable from the other.
	for i, c := range []api{ctl1, ctl2} {
		out := c.must(202, "POST", "/api/v1/namespaces/_/actions/hello", map[string]any{"name": fmt.Sprintf("n%d", i)})
		var got struct {
			ActivationID string `json:"activationId"`
		}
		if err := json.Unmarshal(out, &got); err != nil || len(got.ActivationID) != 32 {
			t.Fatalf("non-blocking answer %s (%v)", out, err)
		}
		other := []api{ctl2, ctl1}[i]
		rec := other.activation(got.ActivationID)
		if !rec.Response.Success || !strings.Contains(string(rec.Response.Result), fmt.Sprintf("Hello n%d", i)) {
			t.Fatalf("record %s: %+v %s", got.ActivationID, rec.Response, rec.Response.Result)
		}
	}

	// eddy status, from etcd and through controller 2's API.
	etcdEPs := fmt.Sprintf("https://127.0.0.1:%d,https://127.0.0.1:%d,https://127.0.0.1:%d", base+1, base+2, base+3)
	tlsDir := filepath.Join(runDir, "tls")
	checkStatus := func(st whisk.ClusterStatus, how string) {
		t.Helper()
		if len(st.Schedulers) != 3 || len(st.Invokers) != 2 {
			t.Fatalf("%s: %d schedulers, %d invokers; want 3, 2: %+v", how, len(st.Schedulers), len(st.Invokers), st)
		}
		for _, q := range st.Queues {
			if q.Namespace == "guest" && q.Action == "hello" && strings.HasPrefix(q.Leader, "scheduler") {
				t.Logf("%s: queue %+v", how, q)
				return
			}
		}
		t.Fatalf("%s: no queue of guest/hello with a leader: %+v", how, st.Queues)
	}
	checkStatus(eddyStatus(t, eddyBin, tlsDir, "--etcd", etcdEPs), "eddy status --etcd")
	checkStatus(eddyStatus(t, eddyBin, "", "--apihost", ctl2.base, "--auth", guestAuth), "eddy status --apihost")
	if out, err := runScript("status"); err != nil || !strings.Contains(out, "SCHEDULERS (3)") || !strings.Contains(out, "/guest/hello") {
		t.Fatalf("cluster.sh status: %v\n%s", err, out)
	}

	// One etcd member stops: the cluster carries on (2 of 3 keep quorum).
	etcd1 := readPid(t, filepath.Join(runDir, "etcd1.pid"))
	if err := syscall.Kill(etcd1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i, c := range []api{ctl1, ctl2} {
		name := fmt.Sprintf("e%d", i)
		out := c.must(200, "POST", "/api/v1/namespaces/_/actions/hello?blocking=true&result=true", map[string]any{"name": name})
		if !strings.Contains(string(out), "Hello "+name) {
			t.Fatalf("with etcd1 stopped: %s", out)
		}
	}
	checkStatus(eddyStatus(t, eddyBin, tlsDir, "--etcd", fmt.Sprintf("https://127.0.0.1:%d", base+2)), "eddy status with etcd1 stopped")
	t.Logf("all checks done in %v", time.Since(start).Round(time.Millisecond))
}

// requirePostgres skips (or fails, with EDDY_REQUIRE_POSTGRES=1) when the
// PostgreSQL server binaries, or the postgres user root needs, are missing.
func requirePostgres(t *testing.T) {
	t.Helper()
	why := ""
	if _, err := exec.LookPath("bash"); err != nil {
		why = "bash is not installed"
	} else if !havePostgres() {
		why = "PostgreSQL binaries (initdb, postgres) not found under /usr/lib/postgresql/*/bin, $EDDY_POSTGRES_BIN or $PATH"
	} else if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			why = "running as root and there is no postgres user to run PostgreSQL as"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("EDDY_REQUIRE_POSTGRES") == "1" {
		t.Fatalf("%s (EDDY_REQUIRE_POSTGRES=1; run scripts/postgres-deps)", why)
	}
	t.Skipf("%s; skipping the local-cluster test (install with scripts/postgres-deps; EDDY_REQUIRE_POSTGRES=1 fails instead)", why)
}

func havePostgres() bool {
	has := func(dir string) bool {
		for _, n := range []string{"initdb", "postgres", "pg_ctl", "psql"} {
			if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("EDDY_POSTGRES_BIN"); d != "" {
		return has(d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for _, d := range dirs {
		if has(d) {
			return true
		}
	}
	p, err := exec.LookPath("initdb")
	return err == nil && has(filepath.Dir(p))
}

// clusterEnv is the script's environment: ours without EDDY_* settings
// that would reach the roles, plus the test's directories and ports.
func clusterEnv(runDir, binDir string, base, p1, p2 int) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "EDDY_") && !strings.HasPrefix(kv, "EDDY_POSTGRES_BIN=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"EDDY_CLUSTER_DIR="+runDir,
		"EDDY_BIN="+binDir,
		"EDDY_CLUSTER_PORT_BASE="+strconv.Itoa(base),
		fmt.Sprintf("EDDY_CONTROLLER_PORTS=%d %d", p1, p2),
		"EDDY_CLUSTER_BACKEND=process",
	)
}

// ctlPort1 and ctlPort2 are the offsets from freeBase's base of the two
// controllers' API ports.
const ctlPort1, ctlPort2 = 81, 82

// freeBase finds a base port whose offsets the script uses (and the
// controllers' ports) are all free. It picks below the kernel's ephemeral
// range: a port that was free when checked stays free until the cluster
// binds it, where in the ephemeral range any outgoing connection on the
// machine may take it as its source port meanwhile (an etcd member then
// exits at start with "address already in use").
func freeBase(t *testing.T) int {
	t.Helper()
	offsets := []int{1, 2, 3, 11, 12, 13, 21, 22, 23, 31, 41, 42, 43, 51, 52, 61, 62, 63, 71, 72, ctlPort1, ctlPort2}
	lo := ephemeralLow()
	for range 50 {
		base := 20000 + rand.IntN(lo-100-20000)
		ok := true
		for _, o := range offsets {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+o))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range found")
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range
// (ip_local_port_range; 32768, Linux's default, when unreadable).
func ephemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 20000+1000 {
				lo = n
			}
		}
	}
	return lo
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// readPids reads every pid file of the run dir.
func readPids(runDir string) []int {
	files, _ := filepath.Glob(filepath.Join(runDir, "*.pid"))
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	// A zombie is dead for our purpose.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// processesUnder lists live processes whose command line names one of dirs
// (our binaries, the run dir: the roles, their action processes, postgres).
func processesUnder(dirs ...string) []string {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if pid == os.Getpid() || !alive(pid) {
			continue
		}
		for _, d := range dirs {
			if strings.Contains(cmd, d+"/") {
				out = append(out, fmt.Sprintf("%d: %s", pid, cmd))
				break
			}
		}
	}
	return out
}

// eddyStatus runs `eddy status --json` with args.
func eddyStatus(t *testing.T, eddyBin, tlsDir string, args ...string) whisk.ClusterStatus {
	t.Helper()
	cmd := exec.Command(eddyBin, append([]string{"status", "--json"}, args...)...)
	cmd.Env = append(os.Environ(), "WSK_CONFIG_FILE="+filepath.Join(t.TempDir(), "wskprops"))
	if tlsDir != "" { // the certificates cluster.sh made: etcd requires a client's
		f := pki.In(tlsDir, "client")
		cmd.Env = append(cmd.Env, "EDDY_TLS_CA="+f.CA, "EDDY_TLS_CERT="+f.Cert, "EDDY_TLS_KEY="+f.Key)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("eddy status %v: %v\n%s", args, err, out)
	}
	var st whisk.ClusterStatus
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("eddy status %v: %v\n%s", args, err, out)
	}
	return st
}

// api calls one controller's REST API with the guest key.
type api struct {
	t    *testing.T
	base string
}

func (a api) call(method, path string, body any) (int, []byte) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	uuid, key, _ := strings.Cut(guestAuth, ":")
	req.SetBasicAuth(uuid, key)
	client := &http.Client{Timeout: 70 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, a.base+path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (a api) must(want int, method, path string, body any) []byte {
	a.t.Helper()
	code, out := a.call(method, path, body)
	if code != want {
		a.t.Fatalf("%s %s%s: %d %s, want %d", method, a.base, path, code, out, want)
	}
	return out
}

// activation reads a record, waiting for it to be stored.
func (a api) activation(id string) whisk.Activation {
	a.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out := a.call("GET", "/api/v1/namespaces/_/activations/"+id, nil)
		if code == 200 {
			var rec whisk.Activation
			if err := json.Unmarshal(out, &rec); err != nil {
				a.t.Fatalf("record %s: %v", out, err)
			}
			return rec
		}
		if code != 404 || time.Now().After(deadline) {
			a.t.Fatalf("GET activation %s from %s: %d %s", id, a.base, code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
