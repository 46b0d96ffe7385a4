package runtime

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
)

// initConcurrent posts an /init asking for concurrency n.
func (h *harness) initConcurrent(code string, n int) (int, map[string]any) {
	h.t.Helper()
	return h.post("/init", map[string]any{"value": map[string]any{
		"name": "test", "main": "main", "code": code, "concurrency": n,
	}})
}

// demux feeds the harness's log lines to a container.Demux until the test
// ends.
func (h *harness) demux() *container.Demux {
	if h.dm != nil {
		return h.dm
	}
	d := container.NewDemux()
	h.dm = d
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case l := <-h.logs:
				d.Feed(l)
			case <-stop:
				return
			}
		}
	}()
	h.t.Cleanup(func() { close(stop); <-done })
	return d
}

// runOverlapping runs n activations at once (ids act0..act<n-1>, each with
// {"i": i}); it checks that they overlapped (all within less than the sum
// of their sleeps) and that each one's logs hold exactly its own marker
// lines on both streams.
func runOverlapping(t *testing.T, h *harness, n int, sleep time.Duration, markers func(i int) (out, err []string)) {
	t.Helper()
	d := h.demux()
	colls := make([]*container.Collection, n)
	for i := range n {
		colls[i] = d.Start(fmt.Sprintf("act%d", i), 1<<20)
	}
	var wg sync.WaitGroup
	results := make([]map[string]any, n)
	statuses := make([]int, n)
	began := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], results[i] = h.run(map[string]any{"i": i}, fmt.Sprintf("act%d", i))
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	if limit := time.Duration(n) * sleep * 3 / 4; elapsed >= limit {
		t.Errorf("%d runs of %v took %v: they did not overlap", n, sleep, elapsed)
	}
	for i := range n {
		if statuses[i] != 200 || results[i]["i"] != float64(i) {
			t.Errorf("run %d: %d %v", i, statuses[i], results[i])
		}
		logs, _, complete := colls[i].Wait(10 * time.Second)
		if !complete {
			t.Errorf("run %d: sentinels missing; logs %q", i, logs)
		}
		outs, errs := markers(i)
		want := len(outs) + len(errs)
		for _, m := range outs {
			if !hasLine(logs, "stdout", m) {
				t.Errorf("run %d: stdout line %q missing from %q", i, m, logs)
			}
		}
		for _, m := range errs {
			if !hasLine(logs, "stderr", m) {
				t.Errorf("run %d: stderr line %q missing from %q", i, m, logs)
			}
		}
		if len(logs) != want {
			t.Errorf("run %d: %d lines, want %d (only its own): %q", i, len(logs), want, logs)
		}
		for _, l := range logs {
			if strings.Contains(l, container.TagMark) || strings.Contains(l, Sentinel) {
				t.Errorf("run %d: raw tag or sentinel in %q", i, l)
			}
		}
	}
}

func pyMarkers(i int) ([]string, []string) {
	return []string{fmt.Sprintf("begin %d", i), fmt.Sprintf("end %d", i), fmt.Sprintf("partial %d done", i)},
		[]string{fmt.Sprintf("err %d", i)}
}

const pyConcurrent = `import sys, time, threading
print("loading")
def main(args):
    i = args["i"]
    print("begin", i)
    time.sleep(0.5)
    print("err", i, file=sys.stderr)
    time.sleep(0.5)
    print("end", i)
    sys.stdout.write("partial %d" % i)
    sys.stdout.write(" done")
    return {"i": i, "thread": threading.get_ident()}
`

func TestPythonConcurrentRunsKeepTheirLogs(t *testing.T) {
	h := newHarness(t, LauncherPython)
	st, body := h.initConcurrent(pyConcurrent, 4)
	if st != 200 || body["ok"] != true || body["concurrency"] != float64(4) {
		t.Fatalf("init: %d %v", st, body)
	}
	runOverlapping(t, h, 4, time.Second, pyMarkers)
	// A second round on the same process: the slots were given back.
	runOverlapping(t, h, 4, time.Second, pyMarkers)
}

const jsConcurrent = `console.log("loading");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function main(args) {
  const i = args.i;
  console.log("begin", i);
  await sleep(500);
  console.error("err", i);
  await sleep(500);
  console.log("end", i);
  process.stdout.write("partial " + i);
  process.stdout.write(" done");
  return { i };
}
`

func TestNodejsConcurrentRunsKeepTheirLogs(t *testing.T) {
	h := newHarness(t, LauncherNodejs)
	st, body := h.initConcurrent(jsConcurrent, 4)
	if st != 200 || body["ok"] != true || body["concurrency"] != float64(4) {
		t.Fatalf("init: %d %v", st, body)
	}
	runOverlapping(t, h, 4, time.Second, pyMarkers)
	runOverlapping(t, h, 4, time.Second, pyMarkers)
}

// A bash actionloop that sleeps: one process per slot.
const bashSleepLoop = `#!/bin/bash
while read -r line; do
  i=$(echo "$line" | sed -e 's/.*"i":\([0-9]*\).*/\1/')
  echo "begin $i"
  sleep 0.5
  echo "err $i" >&2
  sleep 0.5
  echo "end $i"
  echo "partial $i done"
  echo "{\"i\": $i}" >&3
done
`

func TestNativeConcurrentRunsKeepTheirLogs(t *testing.T) {
	h := newHarness(t, LauncherNative)
	st, body := h.initConcurrent(bashSleepLoop, 4)
	if st != 200 || body["ok"] != true || body["concurrency"] != float64(4) {
		t.Fatalf("init: %d %v", st, body)
	}
	runOverlapping(t, h, 4, time.Second, pyMarkers)
	runOverlapping(t, h, 4, time.Second, pyMarkers)
}

// Concurrency 1 (or none) in /init keeps the plain, untagged protocol.
func TestConcurrencyOneIsPlain(t *testing.T) {
	h := newHarness(t, LauncherPython)
	st, body := h.initConcurrent(pyHello, 1)
	if st != 200 || body["ok"] != true || body["concurrency"] != nil {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
	if st, res := h.run(map[string]any{"name": "x"}, "a"); st != 200 || res["greeting"] != "Hello x" {
		t.Fatalf("run: %d %v", st, res)
	}
	logs := h.collect()
	if !hasLine(logs, "stdout", "hello x") || strings.Contains(strings.Join(logs, "\n"), container.TagMark) {
		t.Errorf("logs: %q", logs)
	}
}
