package cluster_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/pki"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// testCluster is a local cluster started by deploy/cluster.sh on free
// ports in a temp run dir, stopped (and checked stopped) at cleanup.
type testCluster struct {
	t       *testing.T
	root    string
	binDir  string
	runDir  string
	eddyBin string
	base    int
	env     []string
	etcdEPs string
	ctl1    api
	ctl2    api
}

// startCluster builds the binaries and starts a cluster; extraEnv
// (EDDY_<FLAG>=value) reaches every role.
func startCluster(t *testing.T, extraEnv ...string) *testCluster {
	t.Helper()
	return startClusterWith(t, nil, extraEnv...)
}

// startClusterWith is startCluster with more environment made from the
// cluster's port base once it is chosen (etcd clients at base+1..3).
func startClusterWith(t *testing.T, envOf func(base int) []string, extraEnv ...string) *testCluster {
	t.Helper()
	requirePostgres(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, root: root, binDir: t.TempDir()}
	for _, b := range []string{"eddy", "eddy-kafka-dev"} {
		build := exec.Command("go", "build", "-o", filepath.Join(c.binDir, b), "./cmd/"+b)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b, err, out)
		}
	}
	c.eddyBin = filepath.Join(c.binDir, "eddy")
	if c.runDir, err = os.MkdirTemp("", "eddy-cluster-test-"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(c.runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.base = freeBase(t)
	p1, p2 := c.base+ctlPort1, c.base+ctlPort2
	c.env = append(clusterEnv(c.runDir, c.binDir, c.base, p1, p2), extraEnv...)
	if envOf != nil {
		c.env = append(c.env, envOf(c.base)...)
	}
	c.etcdEPs = fmt.Sprintf("https://127.0.0.1:%d,https://127.0.0.1:%d,https://127.0.0.1:%d", c.base+1, c.base+2, c.base+3)
	c.ctl1 = api{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", p1)}
	c.ctl2 = api{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", p2)}

	t.Cleanup(func() {
		pids := readPids(c.runDir)
		if out, err := c.script("stop"); err != nil {
			t.Errorf("cluster.sh stop: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
		for _, pid := range pids {
			if alive(pid) {
				t.Errorf("process %d still runs after cluster.sh stop", pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if left := processesUnder(c.binDir, c.runDir); len(left) > 0 {
			t.Logf("processes left behind (killed now): %v", left)
			for _, l := range left {
				var pid int
				if _, err := fmt.Sscanf(l, "%d:", &pid); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if t.Failed() {
			for _, name := range []string{"controller1", "controller2", "scheduler1", "scheduler2", "scheduler3", "invoker1", "invoker2"} {
				if b, err := os.ReadFile(filepath.Join(c.runDir, name+".log")); err == nil {
					t.Logf("---- %s.log (tail)\n%s", name, tail(string(b), 2000))
				}
			}
		}
		if keep := os.Getenv("EDDY_CLUSTER_KEEP_FAILED"); keep != "" && t.Failed() {
			// A debugging aid: keep the whole run dir (every role's full log) of a failed test.
			dst := filepath.Join(keep, t.Name()+"-"+filepath.Base(c.runDir))
			if err := os.MkdirAll(keep, 0o755); err == nil && os.Rename(c.runDir, dst) == nil {
				t.Logf("run dir kept in %s", dst)
			}
		}
		os.RemoveAll(c.runDir)
	})

	start := time.Now()
	if out, err := c.script("start"); err != nil {
		t.Fatalf("cluster.sh start: %v\n%s", err, out)
	}
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
	return c
}

func (c *testCluster) script(arg string) (string, error) {
	cmd := exec.Command(filepath.Join(c.root, "deploy", "cluster.sh"), arg)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kill9 sends SIGKILL to the process of name's pid file.
func (c *testCluster) kill9(name string) {
	c.t.Helper()
	pid := readPid(c.t, filepath.Join(c.runDir, name+".pid"))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill -9 %s (%d): %v", name, pid, err)
	}
	for i := 0; i < 100 && alive(pid); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *testCluster) status() whisk.ClusterStatus {
	c.t.Helper()
	return eddyStatus(c.t, c.eddyBin, c.tlsDir(), "--etcd", c.etcdEPs)
}

// tlsDir holds the certificates cluster.sh made (eddy admin certs).
func (c *testCluster) tlsDir() string { return filepath.Join(c.runDir, "tls") }

// tlsFlags are the --tls-* flags of the process with certificate name, as
// cluster.sh's tls_flags gives them.
func (c *testCluster) tlsFlags(name string) []string {
	f := pki.In(c.tlsDir(), name)
	return []string{"--tls-ca", f.CA, "--tls-cert", f.Cert, "--tls-key", f.Key}
}

// clientTLS is the tls.Config of a tool of the cluster (the client
// certificate).
func (c *testCluster) clientTLS() *tls.Config {
	c.t.Helper()
	tc, err := pki.In(c.tlsDir(), "client").Config()
	if err != nil {
		c.t.Fatal(err)
	}
	return tc
}

// leaderOf is the leader scheduler of guest/action, "" if none.
func leaderOf(st whisk.ClusterStatus, action string) string {
	for _, q := range st.Queues {
		if q.Namespace == "guest" && q.Action == action {
			return q.Leader
		}
	}
	return ""
}

// httpCall is api.call without testing.T: for goroutines.
func httpCall(base, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	uuid, key, _ := strings.Cut(guestAuth, ":")
	req.SetBasicAuth(uuid, key)
	client := &http.Client{Timeout: 70 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, nil
}

// invokeNB invokes action non-blocking and returns the activation id.
func invokeNB(base, action string, params any) (string, error) {
	code, out, err := httpCall(base, "POST", "/api/v1/namespaces/_/actions/"+action, params)
	if err != nil {
		return "", err
	}
	if code != 202 {
		return "", fmt.Errorf("%d %s", code, out)
	}
	var got struct {
		ActivationID string `json:"activationId"`
	}
	if err := json.Unmarshal(out, &got); err != nil || got.ActivationID == "" {
		return "", fmt.Errorf("answer %s (%v)", out, err)
	}
	return got.ActivationID, nil
}

// collectRecords reads the record of every id (alternating controllers)
// until all are found or the deadline passes; it returns those found.
func collectRecords(ids []string, bases []string, deadline time.Time) map[string]whisk.Activation {
	recs := map[string]whisk.Activation{}
	for {
		for i, id := range ids {
			if _, ok := recs[id]; ok {
				continue
			}
			code, out, err := httpCall(bases[i%len(bases)], "GET", "/api/v1/namespaces/_/activations/"+id, nil)
			if err != nil || code != 200 {
				continue
			}
			var rec whisk.Activation
			if json.Unmarshal(out, &rec) == nil {
				recs[id] = rec
			}
		}
		if len(recs) == len(ids) || time.Now().After(deadline) {
			return recs
		}
		time.Sleep(500 * time.Millisecond)
	}
}
