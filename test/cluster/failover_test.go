package cluster_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Real-process failure tests (issue 5): each starts its own local cluster
// with a 3 s lease TTL, kills a role with SIGKILL, and counts records.

var failoverEnv = []string{"EDDY_LEASE_TTL=3s", "EDDY_INVOCATIONS_PER_MINUTE=100000"}

// loadResult is what a load run got back from the controllers.
type loadResult struct {
	mu       sync.Mutex
	ids      []string
	accepted map[string]time.Time
	refused  []string
}

// runLoad invokes action non-blocking at rate per second through both
// controllers for d.
func runLoad(c *testCluster, action string, rate int, d time.Duration) *loadResult {
	res := &loadResult{accepted: map[string]time.Time{}}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		base := []string{c.ctl1.base, c.ctl2.base}[i%2]
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			at := time.Now()
			id, err := invokeNB(base, action, map[string]any{"name": fmt.Sprintf("l%d", i)})
			res.mu.Lock()
			defer res.mu.Unlock()
			if err != nil {
				res.refused = append(res.refused, fmt.Sprintf("%s #%d at %s: %v", base, i, at.Format("15:04:05.000"), err))
				return
			}
			res.ids = append(res.ids, id)
			res.accepted[id] = at
		}(i)
	}
	wg.Wait()
	return res
}

func TestKillLeaderScheduler(t *testing.T) {
	c := startCluster(t, failoverEnv...)
	c.ctl1.must(200, "PUT", "/api/v1/namespaces/_/actions/busy", map[string]any{"exec": map[string]any{"kind": "native", "code": helloScript}})
	c.ctl1.must(200, "POST", "/api/v1/namespaces/_/actions/busy?blocking=true&result=true", map[string]any{"name": "warm"})
	leader := leaderOf(c.status(), "busy")
	if !strings.HasPrefix(leader, "scheduler") {
		t.Fatalf("no leader for guest/busy: %+v", c.status().Queues)
	}

	var res *loadResult
	done := make(chan struct{})
	go func() { defer close(done); res = runLoad(c, "busy", 20, 15*time.Second) }()
	time.Sleep(5 * time.Second)
	killAt := time.Now()
	c.kill9(leader)
	t.Logf("kill -9 %s (leader of guest/busy) at %s", leader, killAt.Format("15:04:05.000"))
	// The leader's key goes at lease expiry; a new leader appears.
	newLeader := ""
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if l := leaderOf(c.status(), "busy"); l != "" && l != leader {
			newLeader = l
			break
		}
	}
	t.Logf("new leader %q seen in etcd %v after the kill", newLeader, time.Since(killAt).Round(time.Millisecond))
	<-done

	recs := collectRecords(res.ids, []string{c.ctl1.base, c.ctl2.base}, time.Now().Add(60*time.Second))
	distinct := map[string]bool{}
	for _, id := range res.ids {
		distinct[id] = true
	}
	success, failed := 0, 0
	var lost []string
	var starts []int64
	for _, id := range res.ids {
		rec, ok := recs[id]
		if !ok {
			lost = append(lost, id)
			continue
		}
		if rec.Response.Success {
			success++
		} else {
			failed++
			if failed <= 5 {
				t.Logf("error record %s: status %q %s", id, rec.Response.Status, rec.Response.Result)
			}
		}
		starts = append(starts, rec.Start)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	killMs := killAt.UnixMilli()
	firstAfter := int64(-1)
	for _, s := range starts {
		if s > killMs {
			firstAfter = s - killMs
			break
		}
	}
	maxGap := int64(0)
	for i := 1; i < len(starts); i++ {
		if starts[i] >= killMs-1000 && starts[i]-starts[i-1] > maxGap {
			maxGap = starts[i] - starts[i-1]
		}
	}
	t.Logf("accepted %d (distinct ids %d, duplicates %d), refused %d, records %d: success %d, error %d, lost %d",
		len(res.ids), len(distinct), len(res.ids)-len(distinct), len(res.refused), len(recs), success, failed, len(lost))
	t.Logf("failover time (kill -> first activation started after it): %d ms; largest gap between record starts around the kill: %d ms",
		firstAfter, maxGap)
	for i, r := range res.refused {
		if i < 5 {
			t.Logf("refused: %s", r)
		}
	}
	if newLeader == "" {
		t.Errorf("no new leader for guest/busy in etcd within 20 s of killing %s", leader)
	}
	if len(lost) > 0 {
		t.Errorf("lost %d of %d accepted activations (no record after 60 s), e.g. %v", len(lost), len(res.ids), lost[:min(5, len(lost))])
	}
	if len(distinct) != len(res.ids) {
		t.Errorf("duplicate activation ids: %d accepted, %d distinct", len(res.ids), len(distinct))
	}
	if firstAfter < 0 {
		t.Errorf("no activation started after the kill")
	}
	// The action works through the new leader.
	c.ctl2.must(200, "POST", "/api/v1/namespaces/_/actions/busy?blocking=true&result=true", map[string]any{"name": "after"})
}

func TestSchedulerRejoins(t *testing.T) {
	c := startCluster(t, failoverEnv...)
	actions := []string{"a1", "a2", "a3", "a4", "a5", "a6"}
	for _, a := range actions {
		c.ctl1.must(200, "PUT", "/api/v1/namespaces/_/actions/"+a, map[string]any{"exec": map[string]any{"kind": "native", "code": helloScript}})
	}
	invokeAll := func(tag string) {
		t.Helper()
		for i, a := range actions {
			ctl := []api{c.ctl1, c.ctl2}[i%2]
			name := fmt.Sprintf("%s%d", tag, i)
			out := ctl.must(200, "POST", "/api/v1/namespaces/_/actions/"+a+"?blocking=true&result=true", map[string]any{"name": name})
			if !strings.Contains(string(out), "Hello "+name) {
				t.Fatalf("%s through %s: %s", a, ctl.base, out)
			}
		}
	}
	invokeAll("before")

	c.kill9("scheduler1")
	killAt := time.Now()
	// Restart it with the same id and address, as cluster.sh does, at once
	// (its old lease has not expired).
	logf, err := os.OpenFile(filepath.Join(c.runDir, "scheduler1.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(c.eddyBin, append([]string{"scheduler", "--config", filepath.Join(c.runDir, "eddy.json"), "--id", "scheduler1",
		"--listen", fmt.Sprintf("127.0.0.1:%d", c.base+41)}, c.tlsFlags("scheduler")...)...) // as cluster.sh starts it
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	if err := os.WriteFile(filepath.Join(c.runDir, "scheduler1.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Past the old lease's TTL, scheduler1 is listed (under its new lease).
	time.Sleep(4 * time.Second)
	var st whisk.ClusterStatus
	ok := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		st = c.status()
		for _, s := range st.Schedulers {
			if s.ID == "scheduler1" && len(st.Schedulers) == 3 {
				ok = true
			}
		}
		if ok {
			break
		}
	}
	if !ok {
		t.Fatalf("scheduler1 not listed again (3 schedulers) %v after its restart: %+v", time.Since(killAt).Round(time.Millisecond), st.Schedulers)
	}
	t.Logf("scheduler1 rejoined: %+v (%v after the kill)", st.Schedulers, time.Since(killAt).Round(time.Millisecond))
	// Stays listed (not removed by the old lease's expiry).
	time.Sleep(2 * time.Second)
	st = c.status()
	if len(st.Schedulers) != 3 {
		t.Fatalf("schedulers after the old lease expired: %+v", st.Schedulers)
	}
	invokeAll("after")
	// New queues reach scheduler1 too.
	for i := 0; i < 6; i++ {
		a := fmt.Sprintf("n%d", i)
		c.ctl2.must(200, "PUT", "/api/v1/namespaces/_/actions/"+a, map[string]any{"exec": map[string]any{"kind": "native", "code": helloScript}})
		c.ctl2.must(200, "POST", "/api/v1/namespaces/_/actions/"+a+"?blocking=true&result=true", map[string]any{"name": "x"})
	}
	leads := 0
	for _, q := range c.status().Queues {
		if q.Leader == "scheduler1" {
			leads++
		}
	}
	t.Logf("scheduler1 leads %d queues after rejoining", leads)
	if out, err := c.script("status"); err != nil || !strings.Contains(out, "SCHEDULERS (3)") {
		t.Fatalf("cluster.sh status: %v\n%s", err, out)
	}
}
