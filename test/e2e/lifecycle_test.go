package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/testenv"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// TestIdleContainersRemoved: after the idle timeout the container is gone,
// and so is its etcd key; the queue's leader key goes after the idle-queue
// timeout.
func TestIdleContainersRemoved(t *testing.T) { forBackends(t, testIdleContainersRemoved) }

func testIdleContainersRemoved(t *testing.T, backend string) {
	e := startEddy(t, backend, "", "--container-idle-timeout", "2s", "--queue-idle-timeout", "4s")
	e.createAction("pid", "python:3.11", identityPy, nil)
	out := e.mustCall(200, "POST", "/api/v1/namespaces/_/actions/pid?blocking=true&result=true", map[string]any{})
	var r ranBy
	_ = json.Unmarshal(out, &r)
	if r.Pid == 0 || e.gone(r) {
		t.Fatalf("container %v not alive right after the run", r)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := e.etcdClient(ctx)
	fqn := whisk.FQN{Namespace: "guest", Name: "pid"}
	if n, err := c.CountContainers(ctx, fqn, 1); err != nil || n != 1 {
		t.Fatalf("containers in etcd after the run = %d, %v; want 1", n, err)
	}
	if _, ok, err := c.Leader(ctx, fqn); err != nil || !ok {
		t.Fatalf("no leader key while the queue is active: %v", err)
	}

	waitFor(t, 15*time.Second, "container removed", func() bool {
		n, err := c.CountContainers(ctx, fqn, 1)
		return err == nil && n == 0 && e.gone(r)
	})
	waitFor(t, 20*time.Second, "leader key removed with the idle queue", func() bool {
		_, ok, err := c.Leader(ctx, fqn)
		return err == nil && !ok
	})

	// The action still works: a new queue and a new container.
	out = e.mustCall(200, "POST", "/api/v1/namespaces/_/actions/pid?blocking=true&result=true", map[string]any{})
	var r2 ranBy
	_ = json.Unmarshal(out, &r2)
	if r2.Pid == 0 || r2 == r {
		t.Fatalf("second run pid %d (first %d)", r2.Pid, r.Pid)
	}
}

// TestRestartKeepsDataAndShutsDownClean: SIGTERM removes every container
// and leaves no process; a restart on the same data dir keeps actions and
// records.
func TestRestartKeepsDataAndShutsDownClean(t *testing.T) {
	forBackends(t, testRestartKeepsDataAndShutsDownClean)
}

func testRestartKeepsDataAndShutsDownClean(t *testing.T, backend string) {
	dir := t.TempDir()
	e := startEddy(t, backend, dir)
	e.createAction("keep", "python:3.11", identityPy, nil)
	code, hdr, out := e.call("POST", "/api/v1/namespaces/_/actions/keep?blocking=true", map[string]any{})
	if code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	id := hdr.Get("x-openwhisk-activation-id")
	var rec whisk.Activation
	_ = json.Unmarshal(out, &rec)
	var r ranBy
	_ = json.Unmarshal(rec.Response.Result, &r)
	e.activation(id) // stored before we stop

	running := e.descendants()
	if backend == "process" && len(running) < 2 { // the runtime server and its python child
		t.Fatalf("expected runtime processes below eddy while it runs, found %v", running)
	}
	if len(e.containers()) == 0 {
		t.Fatalf("no container while eddy runs")
	}
	e.stop()
	if c := e.exitCode(); c != 0 {
		t.Fatalf("exit code after SIGTERM = %d\n%s", c, e.out.String())
	}
	for _, pid := range running {
		if pidAlive(pid) {
			t.Errorf("process %d still alive after shutdown", pid)
		}
	}
	if left := e.containers(); len(left) > 0 || !e.gone(r) {
		t.Errorf("containers left after shutdown: %v", left)
	}

	e2 := startEddy(t, backend, dir)
	e2.mustCall(200, "GET", "/api/v1/namespaces/_/actions/keep", nil)
	a := e2.activation(id)
	if a.ActivationID != whisk.ActivationID(id) || !a.Response.Success {
		t.Fatalf("record after restart = %+v", a)
	}
	out = e2.mustCall(200, "POST", "/api/v1/namespaces/_/actions/keep?blocking=true&result=true", map[string]any{})
	if !strings.Contains(string(out), "pid") {
		t.Fatalf("invoke after restart: %s", out)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, d, what, cond)
}

var _ = os.Getpid
