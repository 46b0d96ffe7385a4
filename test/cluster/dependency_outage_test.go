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
	"syscall"
	"testing"
	"time"
)

// Real-process PostgreSQL outage test (issue 5: "a running process
// survives a dependency's brief outage and reconnects"). The cluster's
// PostgreSQL server is stopped with `pg_ctl stop -m immediate` (its
// backends are killed, as in a crash) under a steady load of blocking and
// non-blocking invocations, and started again 5 s later on the same data
// dir and port. No Eddy process is restarted.

// pgOutage is the PostgreSQL outage's length when the server is
// stopped; pgFreeze when it is frozen: longer than the Store's operation
// timeout (postgres.DefaultOpTimeout, 10 s), so that calls started early
// in the freeze meet it.
const (
	pgOutage = 5 * time.Second
	pgFreeze = 14 * time.Second
)

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
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c max_connections=300 -c fsync=off"+
		" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c ssl_ca_file=root.crt",
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

// pgProcesses are the pids of the cluster's PostgreSQL server: the
// postmaster and its children.
func (c *testCluster) pgProcesses() []int {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.runDir, "postgres", "postmaster.pid"))
	if err != nil {
		c.t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		c.t.Fatal(err)
	}
	pids := []int{pm}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		s := string(b)
		j := strings.LastIndexByte(s, ')')
		if j < 0 || j+2 >= len(s) {
			continue
		}
		f := strings.Fields(s[j+2:]) // state, ppid, ...
		if len(f) > 1 && f[1] == strconv.Itoa(pm) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// signalPostgres sends sig to every process of the server.
func (c *testCluster) signalPostgres(sig syscall.Signal) {
	c.t.Helper()
	for _, pid := range c.pgProcesses() {
		if err := syscall.Kill(pid, sig); err != nil && err != syscall.ESRCH {
			c.t.Fatalf("signal %v to postgres process %d: %v", sig, pid, err)
		}
	}
}

// pgPhase is what one outage under load measured.
type pgPhase struct {
	outage                           time.Duration
	calls, during, errsDuring, slow  int
	accepted, success, lost, retried int
	slowest, readsBack, recovery     time.Duration
}

// pgOutageUnderLoad runs the load against both controllers, calls down,
// waits until outage has passed since, calls up, lets the load go on,
// and checks the answers and the records (see TestPostgresOutage). At
// probeAt into the outage it probes the reads that must reach PostgreSQL.
func pgOutageUnderLoad(t *testing.T, c *testCluster, actions []string, outage, probeAt time.Duration, down, up func()) pgPhase {
	var ph pgPhase
	retriedBefore := c.recordRetries()
	since := time.Now().UnixMilli() // earlier records start before, the load's after
	stop := make(chan struct{})
	load := startMixedLoad(c, actions, 10, stop)
	time.Sleep(3 * time.Second)
	down()
	downAt := time.Now()
	t.Logf("postgres down at %s", downAt.Format("15:04:05.000"))

	// During the outage, reads that must reach PostgreSQL: an action this
	// controller has never read, and the activations list. They answer an
	// error, within the bound.
	time.Sleep(probeAt)
	var wg sync.WaitGroup
	for _, probe := range []struct{ what, method, path string }{
		{"invoke an uncached action", "POST", "/api/v1/namespaces/_/actions/pgfresh?blocking=true"},
		{"list activations", "GET", "/api/v1/namespaces/_/activations?limit=5"},
		{"get an uncached action", "GET", "/api/v1/namespaces/_/actions/pgfresh"},
	} {
		wg.Go(func() {
			at := time.Now()
			code, body, err := httpCall(c.ctl2.base, probe.method, probe.path, map[string]any{"name": "fresh"})
			took := time.Since(at)
			switch {
			case at.Add(took).After(downAt.Add(outage)):
				t.Errorf("%s during the outage answered after it (%v later, %d %s): the outage was too short for the test", probe.what, took, code, body)
			case err != nil:
				t.Errorf("%s during the outage: %v after %v", probe.what, err, took)
			case took > callBound:
				t.Errorf("%s during the outage took %v (bound %v)", probe.what, took, callBound)
			case code < 500 || !isWhiskError(string(body)):
				t.Errorf("%s during the outage: %d %s, want a 5xx OpenWhisk error", probe.what, code, body)
			default:
				t.Logf("%s during the outage: %d %s in %v", probe.what, code, tail(string(body), 160), took.Round(time.Millisecond))
			}
		})
	}
	time.Sleep(time.Until(downAt.Add(outage)))
	up()
	upAt := time.Now()
	wg.Wait()
	ph.outage = upAt.Sub(downAt)
	t.Logf("postgres up again %v after it went down", ph.outage.Round(time.Millisecond))

	// Reads that need PostgreSQL work again, through each controller.
	ph.readsBack = -1
	for deadline := upAt.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c1, _, err1 := httpCall(c.ctl1.base, "GET", "/api/v1/namespaces/_/activations?limit=1", nil)
		c2, _, err2 := httpCall(c.ctl2.base, "GET", "/api/v1/namespaces/_/activations?limit=1", nil)
		if err1 == nil && err2 == nil && c1 == 200 && c2 == 200 {
			ph.readsBack = time.Since(upAt)
			break
		}
	}
	if ph.readsBack < 0 {
		t.Fatalf("store reads through the controllers still fail 30 s after postgres came back")
	}
	t.Logf("store reads through both controllers work %v after postgres came back", ph.readsBack.Round(time.Millisecond))
	time.Sleep(4 * time.Second) // the load goes on after the restore
	close(stop)
	res := <-load

	// Every answer came within the bound; every refusal is an OpenWhisk
	// error with a 5xx status, never a dropped connection or a 4xx.
	ph.calls = len(res.calls)
	for _, call := range res.calls {
		ph.slowest = max(ph.slowest, call.took)
		if call.took > callBound {
			ph.slow++
			t.Errorf("a call sent at %s took %v (bound %v): %d %s", call.at.Format("15:04:05.000"), call.took, callBound, call.code, tail(call.body, 200))
		}
		inOutage := !call.at.Before(downAt) && call.at.Before(upAt)
		if inOutage {
			ph.during++
		}
		if call.err != nil || (call.code != 200 && call.code != 202) {
			if inOutage {
				ph.errsDuring++
			}
			if call.err != nil || call.code < 500 || !isWhiskError(call.body) {
				t.Errorf("a call sent at %s got %d %v %s, want an activation or a 5xx OpenWhisk error",
					call.at.Format("15:04:05.000"), call.code, call.err, tail(call.body, 200))
			}
		}
	}
	t.Logf("calls: %d, sent during the outage %d (errors %d); slowest answer %v",
		ph.calls, ph.during, ph.errsDuring, ph.slowest.Round(time.Millisecond))
	for i, r := range res.refused {
		if i < 5 {
			t.Logf("refused: %s", r)
		}
	}

	ph.accepted, ph.success, ph.lost = checkLoad(t, c, res)

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

	ph.recovery = firstOKAfter(res, upAt)
	if ph.recovery < 0 || ph.recovery > 15*time.Second {
		t.Errorf("first successful blocking invocation sent after postgres came back: %v later, want within 15 s", ph.recovery)
	}
	t.Logf("first successful blocking invocation sent after postgres came back: %v later", ph.recovery.Round(time.Millisecond))

	ph.retried = c.recordRetries() - retriedBefore
	if ph.retried == 0 {
		t.Errorf("no invoker retried a record write: the outage did not happen under load")
	}
	t.Logf("records stored after retries (written during the outage): %d", ph.retried)
	return ph
}

// recordRetries counts the records the invokers stored after retrying
// (their logs), and fails the test if one logged a lost record.
func (c *testCluster) recordRetries() int {
	c.t.Helper()
	n := 0
	for _, name := range []string{"invoker1", "invoker2"} {
		b, _ := os.ReadFile(filepath.Join(c.runDir, name+".log"))
		n += strings.Count(string(b), "activation record stored after retries")
		if strings.Contains(string(b), "activation record lost") {
			c.t.Errorf("%s logged a lost activation record", name)
		}
	}
	return n
}

// TestPostgresOutage takes PostgreSQL away for 5 s under a steady load
// against both controllers, twice: stopped (pg_ctl stop -m immediate, as
// in a crash: connections drop and new ones are refused) and started again
// on the same data; then frozen (SIGSTOP of every server process, as a
// hung server or a partition that drops packets: connections stay open and
// nothing answers) and thawed. No Eddy process restarts; every call of the
// load answers within callBound, with an activation or an OpenWhisk error
// (5xx JSON with "error" and "code"); every activation accepted before,
// during and after the outage ends with exactly one record (the invokers'
// record writes retry through the outage); a controller that must read
// PostgreSQL during the outage (an action it has not cached, the
// activations list) answers an error; and after the outage new blocking
// invocations succeed within a bound.
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
	figures := func(what string, ph pgPhase) {
		t.Logf("FIGURES postgres %s %v: calls %d (during the outage %d, errors %d), accepted %d, completed successfully %d, lost %d, slowest answer %v, records stored after retries %d, store reads back %v and first blocking success %v after it came back",
			what, ph.outage.Round(time.Millisecond), ph.calls, ph.during, ph.errsDuring, ph.accepted, ph.success, ph.lost,
			ph.slowest.Round(time.Millisecond), ph.retried, ph.readsBack.Round(time.Millisecond), ph.recovery.Round(time.Millisecond))
	}

	// (Not subtests: the cluster's helpers fail the top-level test.)
	t.Log("== stopped: pg_ctl stop -m immediate, then start")
	figures("stopped", pgOutageUnderLoad(t, c, actions, pgOutage, pgOutage/3, c.stopPostgres, c.startPostgres))
	t.Log("== frozen: SIGSTOP, then SIGCONT")
	figures("frozen", pgOutageUnderLoad(t, c, actions, pgFreeze, time.Second,
		func() { c.signalPostgres(syscall.SIGSTOP) }, func() { c.signalPostgres(syscall.SIGCONT) }))

	invokeEach(t, c, append(actions, "pgfresh"), "after")
	for n, pid := range pidsBefore {
		if !alive(pid) || readPid(t, filepath.Join(c.runDir, n+".pid")) != pid {
			t.Errorf("%s (pid %d) did not survive the postgres outages", n, pid)
		}
	}
}
