package cluster_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Real-process PostgreSQL outage test (issue 5: "a running process
// survives a dependency's brief outage and reconnects"). The cluster's
// PostgreSQL server is stopped with `pg_ctl stop -m immediate` (its
// backends are killed, as in a crash) under a steady load of blocking and
// non-blocking invocations, and started again 5 s later on the same data
// dir and port. No Eddy process is restarted.

// pgOutage is the PostgreSQL outage's length.
const pgOutage = 5 * time.Second

// callBound bounds every API call of the load during and after the
// outage: an answer (success or error) must come within it.
const callBound = 20 * time.Second

// pgBinDir finds the PostgreSQL binaries as deploy/cluster.sh does.
func pgBinDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("EDDY_POSTGRES_BIN"); d != "" {
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestV := "", -1
	for _, d := range dirs {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if _, serr := os.Stat(filepath.Join(d, "pg_ctl")); serr == nil && err == nil && v > bestV {
			best, bestV = d, v
		}
	}
	if best != "" {
		return best
	}
	p, err := exec.LookPath("pg_ctl")
	if err != nil {
		t.Fatal("pg_ctl not found")
	}
	return filepath.Dir(p)
}

// pgCtl runs pg_ctl on the cluster's data dir, as the postgres user when
// we are root (as cluster.sh does).
func (c *testCluster) pgCtl(args ...string) {
	c.t.Helper()
	bin := filepath.Join(pgBinDir(c.t), "pg_ctl")
	full := append([]string{bin, "-D", filepath.Join(c.runDir, "postgres")}, args...)
	if os.Geteuid() == 0 {
		full = append([]string{"runuser", "-u", "postgres", "--"}, full...)
	}
	out, err := exec.Command(full[0], full[1:]...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("%v: %v\n%s", full, err, out)
	}
}

// stopPostgres stops the server at once (-m immediate: no checkpoint, the
// backends are killed and clients see their connections drop).
func (c *testCluster) stopPostgres() {
	c.t.Helper()
	c.pgCtl("-w", "-t", "30", "-m", "immediate", "stop")
}

// startPostgres starts the server again on its data dir and port, with
// cluster.sh's options (keep them in step), and waits until it accepts
// connections.
func (c *testCluster) startPostgres() {
	c.t.Helper()
	data := filepath.Join(c.runDir, "postgres")
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c max_connections=300 -c fsync=off",
		c.base+31, data)
	c.pgCtl("-l", filepath.Join(c.runDir, "postgres.log"), "-w", "-t", "60", "-o", opts, "start")
	if b, err := os.ReadFile(filepath.Join(data, "postmaster.pid")); err == nil {
		pid, _, _ := strings.Cut(string(b), "\n")
		_ = os.WriteFile(filepath.Join(c.runDir, "postgres.pid"), []byte(pid+"\n"), 0o644)
	}
}

// timedCall is one API call of the load: when it was sent, how long its
// answer took, and the answer.
type timedCall struct {
	at       time.Time
	took     time.Duration
	code     int
	body     string
	err      error
	blocking bool
}

// timedLoad is startMixedLoad's load (alternating controllers, blocking
// and non-blocking) that also keeps every call's timing and answer, so
// that the errors answered during an outage can be checked one by one.
// The result's mixedLoad feeds checkLoad.
type timedLoad struct {
	*mixedLoad
	calls []timedCall
}

func startTimedLoad(c *testCluster, actions []string, rate int, stop <-chan struct{}) <-chan *timedLoad {
	res := &timedLoad{mixedLoad: &mixedLoad{accepted: map[string]time.Time{}, blocking: map[string]bool{}, from: time.Now()}}
	out := make(chan *timedLoad, 1)
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		var wg sync.WaitGroup
		for i := 0; ; i++ {
			select {
			case <-stop:
				res.to = time.Now()
				wg.Wait()
				out <- res
				return
			case <-tick.C:
			}
			base := []string{c.ctl1.base, c.ctl2.base}[i%2]
			action := actions[(i/2)%len(actions)]
			blocking := (i/4)%2 == 0
			wg.Go(func() {
				at := time.Now()
				path := "/api/v1/namespaces/_/actions/" + action
				if blocking {
					path += "?blocking=true"
				}
				code, body, err := httpCall(base, "POST", path, map[string]any{"name": fmt.Sprintf("p%d", i)})
				took := time.Since(at)
				var got struct {
					ActivationID string `json:"activationId"`
					Response     struct {
						Success bool `json:"success"`
					} `json:"response"`
				}
				if err == nil {
					_ = json.Unmarshal(body, &got)
				}
				res.mu.Lock()
				defer res.mu.Unlock()
				res.calls = append(res.calls, timedCall{at: at, took: took, code: code, body: string(body), err: err, blocking: blocking})
				if err != nil || got.ActivationID == "" {
					res.refused = append(res.refused, fmt.Sprintf("%s %s at %s: %d %v %s",
						base, path, at.Format("15:04:05.000"), code, err, tail(string(body), 200)))
					return
				}
				res.accepted[got.ActivationID] = at
				if blocking {
					res.blocking[got.ActivationID] = true
					if code == 200 && got.Response.Success {
						res.okAt = append(res.okAt, at)
					}
				}
			})
		}
	}()
	return out
}

// isWhiskError tells whether body is an OpenWhisk error: a JSON object
// with a non-empty "error" message and a "code" (transaction id).
func isWhiskError(body string) bool {
	var e struct {
		Error string `json:"error"`
		Code  any    `json:"code"`
	}
	return json.Unmarshal([]byte(body), &e) == nil && e.Error != "" && e.Code != nil && e.Code != ""
}

// countActivations counts the records of action since a time (epoch ms)
// through the API.
func countActivations(base, action string, since int64) (int, error) {
	code, out, err := httpCall(base, "GET", fmt.Sprintf("/api/v1/namespaces/_/activations?count=true&name=%s&since=%d", action, since), nil)
	if err != nil {
		return 0, err
	}
	if code != 200 {
		return 0, fmt.Errorf("%d %s", code, out)
	}
	var got struct {
		Activations int `json:"activations"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		return 0, fmt.Errorf("%s: %w", out, err)
	}
	return got.Activations, nil
}

// TestPostgresOutage stops PostgreSQL for 5 s under a steady load against
// both controllers and starts it again on the same data. No Eddy process
// restarts; every call of the load answers within callBound, with an
// activation or an OpenWhisk error (5xx JSON with "error" and "code");
// every activation accepted before, during and after the outage ends with
// exactly one record (the invokers' record writes retry through the
// outage); a controller that must read PostgreSQL during the outage (an
// action it has not cached, the activations list) answers an error; and
// after the restart new blocking invocations succeed within a bound.
func TestPostgresOutage(t *testing.T) {
	c := startCluster(t, failoverEnv...)
	actions := []string{"pgsteady1", "pgsteady2"}
	for _, a := range append(actions, "pgfresh") {
		c.ctl1.must(200, "PUT", "/api/v1/namespaces/_/actions/"+a, map[string]any{"exec": map[string]any{"kind": "native", "code": helloScript}})
	}
	invokeEach(t, c, actions, "warm")
	pidsBefore := map[string]int{}
	for _, n := range []string{"controller1", "controller2", "scheduler1", "scheduler2", "scheduler3", "invoker1", "invoker2"} {
		pidsBefore[n] = readPid(t, filepath.Join(c.runDir, n+".pid"))
	}
	since := time.Now().UnixMilli() // the warm-up records start before, the load's after

	stop := make(chan struct{})
	load := startTimedLoad(c, actions, 10, stop)
	time.Sleep(3 * time.Second)
	c.stopPostgres()
	downAt := time.Now()
	t.Logf("postgres stopped (-m immediate) at %s", downAt.Format("15:04:05.000"))

	// During the outage, reads that must reach PostgreSQL: an action this
	// controller has never read, and the activations list.
	time.Sleep(pgOutage / 2)
	for _, probe := range []struct{ what, method, path string }{
		{"invoke an uncached action", "POST", "/api/v1/namespaces/_/actions/pgfresh?blocking=true"},
		{"list activations", "GET", "/api/v1/namespaces/_/activations?limit=5"},
		{"get an uncached action", "GET", "/api/v1/namespaces/_/actions/pgfresh"},
	} {
		at := time.Now()
		code, body, err := httpCall(c.ctl2.base, probe.method, probe.path, map[string]any{"name": "fresh"})
		took := time.Since(at)
		switch {
		case err != nil:
			t.Errorf("%s during the outage: %v after %v", probe.what, err, took)
		case took > callBound:
			t.Errorf("%s during the outage took %v (bound %v)", probe.what, took, callBound)
		case code < 500 || !isWhiskError(string(body)):
			t.Errorf("%s during the outage: %d %s, want a 5xx OpenWhisk error", probe.what, code, body)
		default:
			t.Logf("%s during the outage: %d %s in %v", probe.what, code, tail(string(body), 160), took.Round(time.Millisecond))
		}
	}
	time.Sleep(time.Until(downAt.Add(pgOutage)))
	c.startPostgres()
	upAt := time.Now()
	t.Logf("postgres started again %v after the stop (pg_ctl start -w took %v)",
		upAt.Sub(downAt).Round(time.Millisecond), upAt.Sub(downAt.Add(pgOutage)).Round(time.Millisecond))

	// Reads that need PostgreSQL work again, through each controller.
	readsBack := time.Duration(-1)
	for deadline := upAt.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c1, _, err1 := httpCall(c.ctl1.base, "GET", "/api/v1/namespaces/_/activations?limit=1", nil)
		c2, _, err2 := httpCall(c.ctl2.base, "GET", "/api/v1/namespaces/_/activations?limit=1", nil)
		if err1 == nil && err2 == nil && c1 == 200 && c2 == 200 {
			readsBack = time.Since(upAt)
			break
		}
	}
	if readsBack < 0 {
		t.Fatalf("store reads through the controllers still fail 30 s after postgres restarted")
	}
	t.Logf("store reads through both controllers work %v after the restart", readsBack.Round(time.Millisecond))
	time.Sleep(4 * time.Second) // the load goes on after the restore
	close(stop)
	res := <-load

	// Every answer came within the bound; every refusal is an OpenWhisk
	// error with a 5xx status, never a dropped connection or a 4xx.
	var during, errsDuring, errsOther, slow int
	var slowest time.Duration
	for _, call := range res.calls {
		slowest = max(slowest, call.took)
		if call.took > callBound {
			slow++
			t.Errorf("a call sent at %s took %v (bound %v): %d %s", call.at.Format("15:04:05.000"), call.took, callBound, call.code, tail(call.body, 200))
		}
		inOutage := !call.at.Before(downAt) && call.at.Before(upAt)
		if inOutage {
			during++
		}
		if call.err != nil || (call.code != 200 && call.code != 202) {
			if inOutage {
				errsDuring++
			} else {
				errsOther++
			}
			if call.err != nil || call.code < 500 || !isWhiskError(call.body) {
				t.Errorf("a call sent at %s got %d %v %s, want an activation or a 5xx OpenWhisk error",
					call.at.Format("15:04:05.000"), call.code, call.err, tail(call.body, 200))
			}
		}
	}
	t.Logf("calls: %d, sent during the outage %d (errors %d), errors outside it %d; slowest answer %v",
		len(res.calls), during, errsDuring, errsOther, slowest.Round(time.Millisecond))
	for i, r := range res.refused {
		if i < 5 {
			t.Logf("refused: %s", r)
		}
	}

	accepted, success, lost := checkLoad(t, c, res.mixedLoad)

	// Exactly one record per accepted activation: the store's count of
	// each action's records since the load started equals what the API
	// accepted (a refused call that still ran would show as one more).
	ids := make([]string, 0, len(res.accepted))
	for id := range res.accepted {
		ids = append(ids, id)
	}
	recs := collectRecords(ids, []string{c.ctl1.base, c.ctl2.base}, time.Now().Add(2*time.Second))
	perAction := map[string]int{}
	for _, id := range ids {
		rec, ok := recs[id]
		if ok {
			perAction[rec.Name]++
			continue
		}
		// Where did it go? What the processes logged about it.
		t.Logf("no record of %s, sent %s (the outage began %s)", id, res.accepted[id].Format("15:04:05.000"), downAt.Format("15:04:05.000"))
		logs, _ := filepath.Glob(filepath.Join(c.runDir, "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, id) {
					t.Logf("  %s: %s", filepath.Base(l), tail(line, 400))
				}
			}
		}
	}
	for _, a := range actions {
		n, err := countActivations(c.ctl2.base, a, since)
		if err != nil {
			t.Fatalf("counting %s's records: %v", a, err)
		}
		if n != perAction[a] {
			t.Errorf("%s: the store holds %d records since the load started, the API accepted %d activations", a, n, perAction[a])
		}
	}

	recovery := firstOKAfter(res.mixedLoad, upAt)
	if recovery < 0 || recovery > 15*time.Second {
		t.Errorf("first successful blocking invocation sent after the restart: %v later, want within 15 s", recovery)
	}
	t.Logf("first successful blocking invocation sent after the restart: %v later", recovery.Round(time.Millisecond))
	invokeEach(t, c, append(actions, "pgfresh"), "after")

	for n, pid := range pidsBefore {
		if !alive(pid) || readPid(t, filepath.Join(c.runDir, n+".pid")) != pid {
			t.Errorf("%s (pid %d) did not survive the postgres outage", n, pid)
		}
	}
	retried := 0
	for _, n := range []string{"invoker1", "invoker2"} {
		b, _ := os.ReadFile(filepath.Join(c.runDir, n+".log"))
		retried += strings.Count(string(b), "activation record stored after retries")
		if strings.Contains(string(b), "activation record lost") {
			t.Errorf("%s logged a lost activation record", n)
		}
	}
	if retried == 0 {
		t.Errorf("no invoker retried a record write: the outage did not happen under load")
	}
	t.Logf("records stored after retries (written during the outage): %d", retried)
	t.Logf("FIGURES postgres stopped %v: calls %d (during the outage %d, errors %d), accepted %d, completed successfully %d, lost %d, slow (> %v) %d, store reads back %v and first blocking success %v after the restart",
		upAt.Sub(downAt).Round(time.Millisecond), len(res.calls), during, errsDuring, accepted, success, lost, callBound, slow,
		readsBack.Round(time.Millisecond), recovery.Round(time.Millisecond))
}
