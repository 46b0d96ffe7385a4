package cluster_test

// TestKillInvoker: kill -9 an invoker running activations of a 2 s action →
// each of its in-flight activations gets an error record ("whisk internal
// error", naming the invoker and the container) once its lease expires,
// and new work runs on the surviving invoker.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const slowScript = `#!/bin/bash
while read -r line; do
  sleep 2
  printf '{"done": true}\n' >&3
done
`

func TestKillInvoker(t *testing.T) {
	c := startCluster(t, failoverEnv...)
	c.ctl1.must(200, "PUT", "/api/v1/namespaces/_/actions/slow", map[string]any{
		"exec": map[string]any{"kind": "native", "code": slowScript}, "limits": map[string]any{"timeout": 10000}})
	bases := []string{c.ctl1.base, c.ctl2.base}
	var ids []string
	for i := 0; i < 8; i++ {
		id, err := invokeNB(bases[i%2], "slow", map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// Blocking callers in flight too: one that waits on the victim must be
	// answered with the error record, not left to time out.
	type answer struct {
		code int
		out  string
		took time.Duration
	}
	answers := make(chan answer, 4)
	for i := 0; i < 4; i++ {
		go func() {
			start := time.Now()
			code, out, err := httpCall(bases[i%2], "POST", "/api/v1/namespaces/_/actions/slow?blocking=true", map[string]any{})
			if err != nil {
				out = []byte(err.Error())
			}
			answers <- answer{code, strings.TrimSpace(string(out)), time.Since(start)}
		}()
	}
	// Wait until an invoker runs containers of slow.
	victim := ""
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && victim == ""; time.Sleep(100 * time.Millisecond) {
		for _, name := range []string{"invoker1", "invoker2"} {
			if hasActionProcesses(c, name) {
				victim = name
				break
			}
		}
	}
	if victim == "" {
		t.Fatal("no invoker ran a container of slow within 15 s")
	}
	time.Sleep(500 * time.Millisecond) // the activations are running (2 s each)
	killAt := time.Now()
	c.kill9(victim)
	t.Logf("kill -9 %s at %s", victim, killAt.Format("15:04:05.000"))

	// New work goes elsewhere: blocking invocations succeed.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Go(func() {
			start := time.Now()
			code, out, err := httpCall(bases[i%2], "POST", "/api/v1/namespaces/_/actions/slow?blocking=true&result=true", map[string]any{})
			t.Logf("blocking invocation %d after the kill: %d in %v", i, code, time.Since(start).Round(10*time.Millisecond))
			if err != nil || code != 200 || !strings.Contains(string(out), `"done":true`) {
				t.Errorf("blocking invocation %d after killing %s: %d %s %v", i, victim, code, out, err)
			}
		})
	}
	wg.Wait()

	recs := collectRecords(ids, bases, killAt.Add(60*time.Second))
	t.Logf("records collected %v after the kill", time.Since(killAt).Round(10*time.Millisecond))
	success, failed := 0, 0
	var lost []string
	var last time.Duration
	for _, id := range ids {
		rec, ok := recs[id]
		switch {
		case !ok:
			lost = append(lost, id)
		case rec.Response.Success:
			success++
		default:
			failed++
			after := time.UnixMilli(rec.End).Sub(killAt)
			last = max(last, after)
			t.Logf("error record %s: %q %s (written %v after the kill)", id, rec.Response.Status, rec.Response.Result, after.Round(10*time.Millisecond))
			if rec.Response.Status != "whisk internal error" || !strings.Contains(string(rec.Response.Result), victim) {
				t.Errorf("error record %s: %q %s; want a whisk internal error naming %s", id, rec.Response.Status, rec.Response.Result, victim)
			}
		}
	}
	t.Logf("non-blocking activations in flight at the kill: %d; records: success %d, error %d, none %d; last error record %v after the kill",
		len(ids), success, failed, len(lost), last.Round(10*time.Millisecond))
	if len(lost) > 0 {
		t.Errorf("%d of %d activations have no record after killing %s: %v", len(lost), len(ids), victim, lost)
	}
	if failed == 0 {
		t.Errorf("no error record although %s was killed while running activations", victim)
	}
	for i := 0; i < 4; i++ {
		a := <-answers
		t.Logf("blocking caller in flight at the kill: %d after %v: %.200s", a.code, a.took.Round(10*time.Millisecond), a.out)
		switch {
		case a.code == 200 && strings.Contains(a.out, `"done":true`):
		case a.code == 500 && strings.Contains(a.out, `"whisk internal error"`) && strings.Contains(a.out, victim):
		default:
			t.Errorf("blocking caller in flight at the kill: %d after %v: %s; want the result or the invoker-lost error", a.code, a.took, a.out)
		}
	}
	for _, inv := range c.status().Invokers {
		t.Logf("invoker %s: %s", inv.ID, inv.Status)
	}
}

// hasActionProcesses: an action process runs under name's work root: its
// data dir, or the work root its log names when it isolates containers
// (a root invoker keeps them under /run/eddy).
func hasActionProcesses(c *testCluster, name string) bool {
	dirs := []string{filepath.Join(c.runDir, name)}
	if b, err := os.ReadFile(filepath.Join(c.runDir, name+".log")); err == nil {
		if i := bytes.LastIndex(b, []byte("work_root=")); i >= 0 {
			root := b[i+len("work_root="):]
			if j := bytes.IndexAny(root, " \n"); j >= 0 {
				root = root[:j]
			}
			dirs = append(dirs, strings.Trim(string(root), `"`))
		}
	}
	return len(processesUnder(dirs...)) > 0
}
