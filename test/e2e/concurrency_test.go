package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// TestIntraContainerConcurrency: with --max-action-concurrency 4, an action
// with limits.concurrency 4 that sleeps 1 s, invoked 8 times at once, runs
// in at most 2 containers, and every record's logs hold its own marker
// lines only. A concurrency over the maximum is refused with OpenWhisk's
// message.
func TestIntraContainerConcurrency(t *testing.T) { forBackends(t, testIntraContainerConcurrency) }

const concurrentPy = `import os, socket, sys, time
def main(args):
    m = args["marker"]
    print("start", m)
    time.sleep(0.5)
    print("middle", m, file=sys.stderr)
    time.sleep(0.5)
    print("stop", m)
    return {"pid": os.getpid(), "host": socket.gethostname(), "marker": m}
`

const concurrentJS = `const os = require("os");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function main(args) {
  const m = args.marker;
  console.log("start", m);
  await sleep(500);
  console.error("middle", m);
  await sleep(500);
  console.log("stop", m);
  return { pid: process.pid, host: os.hostname(), marker: m };
}
`

func testIntraContainerConcurrency(t *testing.T, backend string) {
	e := startEddy(t, backend, "", "--max-action-concurrency", "4")
	code, _, out := e.call("PUT", "/api/v1/namespaces/_/actions/tooconc", map[string]any{
		"exec": map[string]any{"kind": "python:3.11", "code": concurrentPy}, "limits": map[string]any{"concurrency": 5},
	})
	if code != 400 || !strings.Contains(string(out), "concurrency 5 exceeds allowed threshold of 4") {
		t.Errorf("concurrency 5: %d %s", code, out)
	}
	for _, tc := range []struct{ name, kind, code string }{
		{"conc", "python:3.11", concurrentPy},
		{"concjs", "nodejs:18", concurrentJS},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			e.createAction(tc.name, tc.kind, tc.code, map[string]any{"concurrency": 4})
			burstConcurrent(t, e, backend, tc.name)
		})
	}
}

// burstConcurrent invokes action 8 times at once and checks the containers
// and the logs.
func burstConcurrent(t *testing.T, e *eddy, backend, action string) {

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := e.etcdClient(ctx)
	fqn := whisk.FQN{Namespace: "guest", Name: action}
	peak, peakCreating := 0, 0
	watchDone := make(chan struct{})
	stopWatch := make(chan struct{})
	go func() { // containers registered, and creations in flight (a creation's key goes after its container registered)
		defer close(watchDone)
		for {
			if n, err := c.CountContainers(ctx, fqn, 1); err == nil {
				peak = max(peak, n)
			}
			if m, err := c.CountCreations(ctx, fqn, 1); err == nil {
				peakCreating = max(peakCreating, m)
			}
			select {
			case <-stopWatch:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	const n = 8
	type result struct {
		marker string
		id     string
		ran    ranBy
		err    string
	}
	results := make([]result, n)
	client := &http.Client{Timeout: 90 * time.Second}
	var wg sync.WaitGroup
	began := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.marker = fmt.Sprintf("marker-%d-%d", i, time.Now().UnixNano())
			body := strings.NewReader(fmt.Sprintf(`{"marker":%q}`, r.marker))
			req, _ := http.NewRequest("POST", e.URL+"/api/v1/namespaces/_/actions/"+action+"?blocking=true", body)
			req.SetBasicAuth(whisk.GuestUUID, whisk.GuestKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				r.err = err.Error()
				return
			}
			defer resp.Body.Close()
			var a whisk.Activation
			if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != 200 {
				r.err = fmt.Sprintf("status %d, %v", resp.StatusCode, err)
				return
			}
			r.id = string(a.ActivationID)
			_ = json.Unmarshal(a.Response.Result, &r.ran)
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	close(stopWatch)
	<-watchDone

	ran := map[ranBy]int{}
	for _, r := range results {
		if r.err != "" {
			t.Errorf("%s: %s", r.marker, r.err)
			continue
		}
		ran[r.ran]++
		rec := e.activation(r.id)
		logs := strings.Join(rec.Logs, "\n")
		for _, want := range []string{"stdout: start " + r.marker, "stderr: middle " + r.marker, "stdout: stop " + r.marker} {
			if !strings.Contains(logs, want) {
				t.Errorf("%s: %q missing from its logs %q", r.marker, want, rec.Logs)
			}
		}
		if len(rec.Logs) != 3 || strings.Count(logs, "marker-") != 3 {
			t.Errorf("%s: logs not only its own: %q", r.marker, rec.Logs)
		}
	}
	if len(ran) > 2 || peak > 2 || peakCreating > 2 {
		t.Errorf("%d containers ran the 8 activations, peak %d registered, %d in creation; want at most 2", len(ran), peak, peakCreating)
	}
	t.Logf("%s: 8 activations of 1 s with concurrency 4: %v, %d containers ran them (peak %d registered, %d in creation)",
		backend, elapsed.Round(time.Millisecond), len(ran), peak, peakCreating)
}
