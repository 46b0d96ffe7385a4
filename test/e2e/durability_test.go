package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// runLogPy appends the activation id and the time (epoch ms) to a file
// when it starts and sleeps 3 s: the file counts how many times each
// activation started to run, and when.
const runLogPy = `import os, time
def main(args):
    with open(args["log"], "a") as f:
        f.write("%s %d\n" % (os.environ["__OW_ACTIVATION_ID"], int(time.time() * 1000)))
    time.sleep(3)
    return {"ok": True}
`

// Accepted non-blocking activations survive a kill -9 of standalone: those
// still queued run after the restart, those that were running get an
// error record, and none runs twice (counted where the action ran).
func TestKill9KeepsAcceptedActivations(t *testing.T) {
	dir := t.TempDir()
	runs := sharedFile(t, "runs")
	e := startEddy(t, "process", dir)
	e.createAction("slow", "python:3.11", runLogPy, map[string]any{"timeout": 30000})
	const n = 12
	ids := make([]string, 0, n)
	for i := range n {
		out := e.mustCall(202, "POST", "/api/v1/namespaces/_/actions/slow", map[string]any{"log": runs, "i": i})
		var r struct{ ActivationID string }
		if err := json.Unmarshal(out, &r); err != nil || r.ActivationID == "" {
			t.Fatalf("invoke answer %s: %v", out, err)
		}
		ids = append(ids, r.ActivationID)
	}
	// Kill it while some run and the rest wait: once one has started.
	waitFor(t, 60*time.Second, "a first activation to start", func() bool {
		b, _ := os.ReadFile(runs)
		return len(b) > 0
	})
	killAt := time.Now().UnixMilli()
	if err := e.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-e.done
	startedBefore := len(scanLines(readFile(t, runs)))

	e2 := startEddy(t, "process", dir)
	status := map[string]bool{} // id → succeeded
	for _, id := range ids {
		var a whisk.Activation
		waitFor(t, 90*time.Second, "the record of "+id, func() bool {
			code, _, out := e2.call("GET", "/api/v1/namespaces/_/activations/"+id, nil)
			return code == 200 && json.Unmarshal(out, &a) == nil
		})
		switch {
		case a.Response.Success:
			status[id] = true
		case strings.Contains(string(a.Response.Result), whisk.MsgInvokerLost):
			status[id] = false
		default:
			t.Errorf("record of %s: %s", id, a.Response.Result)
		}
	}
	starts := map[string][]int64{}
	for _, l := range scanLines(readFile(t, runs)) {
		id, ms, _ := strings.Cut(l, " ")
		at, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			t.Fatalf("run log line %q: %v", l, err)
		}
		starts[id] = append(starts[id], at)
	}
	ok, interrupted := 0, 0
	for id, succeeded := range status {
		k := len(starts[id])
		switch {
		case k > 1:
			// Also one handed out just before the kill, before its
			// queue committed it to the bus's log: the hand-out record
			// (internal/handout) keeps it from running again.
			t.Errorf("activation %s started %d times (killed at %d): %v", id, k, killAt, starts[id])
		case succeeded && k != 1:
			t.Errorf("activation %s succeeded after %d starts, want 1", id, k)
		case succeeded:
			ok++
		default:
			interrupted++
		}
	}
	// Some were handed out when it was killed (the first had started),
	// and no more than the invoker's containers can hold were: the rest
	// waited, and ran after the restart.
	if ok+interrupted != n || interrupted == 0 || ok == 0 {
		t.Fatalf("%d succeeded and %d were interrupted of %d; want all %d accounted for, some of each",
			ok, interrupted, n, n)
	}
	t.Logf("%d of %d had started before the kill; after the restart %d had run, %d got error records",
		startedBefore, n, ok, interrupted)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// SIGTERM drains: new work gets 503 with Retry-After, every blocking call
// in flight gets its answer, and the process exits cleanly.
func TestSIGTERMDrains(t *testing.T) {
	runs := sharedFile(t, "runs")
	e := startEddy(t, "process", "")
	e.createAction("slow", "python:3.11", runLogPy, map[string]any{"timeout": 30000})
	const n = 4
	type answer struct {
		code int
		body string
	}
	answers := make(chan answer, n)
	for i := range n {
		go func() {
			req, _ := http.NewRequest("POST", e.URL+"/api/v1/namespaces/_/actions/slow?blocking=true&result=true",
				strings.NewReader(fmt.Sprintf(`{"log":%q,"i":%d}`, runs, i)))
			u, p, _ := strings.Cut(guestAuth, ":")
			req.SetBasicAuth(u, p)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{0, err.Error()}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers <- answer{resp.StatusCode, string(b)}
		}()
	}
	waitFor(t, 60*time.Second, "a first activation to start", func() bool {
		b, _ := os.ReadFile(runs)
		return len(b) > 0
	})
	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New work is refused while the calls in flight finish.
	waitFor(t, 10*time.Second, "new work refused", func() bool {
		code, hdr, _ := e.call("POST", "/api/v1/namespaces/_/actions/slow", map[string]any{"log": runs})
		return code == http.StatusServiceUnavailable && hdr.Get("Retry-After") != ""
	})
	for range n {
		a := <-answers
		if a.code != 200 || !strings.Contains(a.body, `"ok"`) {
			t.Errorf("blocking call in flight at SIGTERM: %d %s", a.code, a.body)
		}
	}
	<-e.done
	if c := e.exitCode(); c != 0 {
		t.Fatalf("exit code after the drain = %d", c)
	}
}
