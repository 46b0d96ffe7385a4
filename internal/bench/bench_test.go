package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// eddyBin is the eddy binary built once for the package.
var eddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eddy-bench-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	eddyBin = filepath.Join(dir, "eddy")
	// Built without the race detector: this test checks that the benchmark
	// runs and reports sane numbers, and the end-to-end suite already runs
	// a race-enabled eddy.
	build := exec.Command("go", "build", "-o", eddyBin, "../../cmd/eddy")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building eddy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestQuick runs `eddy bench --quick` against a real standalone on the
// process backend and checks that every scenario wrote sane numbers, so the
// benchmark never rots.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a standalone Eddy and runs every scenario (about a minute)")
	}
	out := t.TempDir()
	ctx, cancel := runContext(t)
	defer cancel()
	var stdout, stderr bytes.Buffer
	began := time.Now()
	code := Main(ctx, []string{"--quick", "--eddy", eddyBin, "--backend", "process", "--out", out}, &stdout, &stderr)
	t.Logf("eddy bench --quick took %s:\n%s", time.Since(began).Round(time.Millisecond), stdout.String())
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}

	var rep report
	readJSON(t, filepath.Join(out, "bench.json"), &rep)
	m := rep.Machine
	if m.Cores < 1 || m.MemoryBytes <= 0 || m.CPUModel == "" || m.GoVersion == "" || m.Backend != "process" || m.Commit == "" {
		t.Errorf("machine facts incomplete: %+v", m)
	}
	for _, s := range allScenarios {
		var f scenarioFile
		readJSON(t, filepath.Join(out, s+".json"), &f)
		if f.Scenario != s || f.Machine.Cores != m.Cores || f.Result == nil {
			t.Errorf("%s.json: scenario %q, machine %+v, result %v", s, f.Scenario, f.Machine, f.Result)
		}
	}

	check := func(what string, ok bool, v any) {
		t.Helper()
		if !ok {
			t.Errorf("%s: not sane: %+v", what, v)
		}
	}
	latency := func(what string, d Dist, n int) {
		t.Helper()
		check(what, d.N == n && d.Min > 0 && d.Min <= d.P50 && d.P50 <= d.P90 && d.P90 <= d.P99 && d.P99 <= d.Max && d.Max < 60000, d)
	}

	w := rep.Warm
	if w == nil {
		t.Fatal("bench.json has no warm scenario")
	}
	latency("warm eddy", w.Eddy, 300)
	latency("warm floor", w.Floor, 300)
	latency("warm http", w.HTTP, 300)
	// The floor bypasses Eddy: it cannot be slower than going through it,
	// nor can one bare HTTP round trip. (L_http is a unit, not a bound on
	// the floor: it is sent with net/http, as the reference defines it,
	// and the floor with the load generator's leaner client to a runtime
	// doing raw-syscall I/O, so the floor can beat it.)
	check("warm floor below eddy", w.Floor.P50 < w.Eddy.P50 && w.HTTP.P50 < w.Eddy.P50, w)
	check("warm ratio", w.RatioP50 > 1 && w.Containers == 1 && w.Errors == 0, w)
	if wb := rep.Web; wb == nil {
		t.Error("no web result")
	} else {
		n := wb.Invoke.N
		check("web counts", n > 0 && wb.JSONGet.N == n && wb.HTTPPost.N == n && wb.APIGet.N == n && wb.APIPost.N == n && wb.Errors == 0, wb)
		check("web ratios", wb.RatioJSONGet > 0 && wb.RatioHTTPPost > 0 && wb.RatioAPIGet > 0 && wb.RatioAPIPost > 0, wb)
	}

	sq := rep.Sequence
	if sq == nil {
		t.Fatal("no sequence scenario")
	}
	latency("sequence", sq.Sequence, 60)
	latency("sequence two invokes", sq.TwoInvokes, 60)
	latency("sequence single", sq.Single, 60)
	// Each of the 2 steps costs at most about one warm invocation through
	// the API: the sequence beats 3 of them.
	check("sequence step cost", sq.Errors == 0 && sq.Sequence.P50 < sq.TwoInvokes.P50+sq.Single.P50 && sq.RatioP50 > 0, sq)

	tp := rep.Throughput
	if tp == nil || len(tp.Levels) != 4 {
		t.Fatalf("throughput: want 4 levels, got %+v", tp)
	}
	for i, l := range tp.Levels {
		check(fmt.Sprintf("throughput level %d", l.Concurrency),
			l.Concurrency == []int{1, 4, 16, 64}[i] && l.Eddy.Calls > 0 && l.Floor.Calls > 0 &&
				l.Eddy.PerSecond > 0 && l.Floor.PerSecond > l.Eddy.PerSecond && l.RatioTput > 0 && l.RatioTput < 1 &&
				l.Eddy.Containers >= 1 && l.Floor.Containers == min(l.Eddy.Containers, l.Concurrency) &&
				l.Eddy.Errors == 0 && l.Floor.Errors == 0 &&
				// bench started Eddy, so it knows its pid and measures its CPU
				l.EddyCPUPerCall > 0 && l.MachineBusyEddy > 0 && l.MachineBusyEddy <= 100 && l.MachineBusyFloor > 0 &&
				l.LoadGenCPUPerCallEddy > 0 && l.LoadGenCPUPerCallFloor > 0 &&
				// the machine's CPU holds Eddy's and the load generator's
				l.MachineCPUPerCallEddy >= l.EddyCPUPerCall && l.MachineCPUPerCallFloor >= l.LoadGenCPUPerCallFloor, l)
		latency(fmt.Sprintf("throughput level %d eddy", l.Concurrency), l.Eddy.Latency, l.Eddy.Calls)
	}

	c := rep.Cold
	if c == nil {
		t.Fatal("no cold scenario")
	}
	latency("cold eddy total", c.Eddy.Total, 3)
	latency("cold floor total", c.Floor.Total, 3)
	check("cold parts", c.Starts["cold"] == 3 && c.Eddy.Init.P50 > 0 && c.Eddy.Create.P50 > 0 &&
		c.Eddy.Queued.P50 >= c.Eddy.Create.P50 && c.Floor.Create.P50 > 0 && c.Floor.Init.P50 > 0 && c.RatioP50 > 0.5, c)
	pw := c.Prewarmed
	if pw == nil {
		t.Fatalf("no prewarm series: %s", c.Prewarm)
	}
	latency("prewarm eddy total", pw.Total, 3)
	// Every fresh action of the prewarmed memory ran in a stem cell: no
	// container creation in its record.
	check("prewarm parts", pw.Starts["prewarm"] == 3 && pw.Create.Max == 0 && pw.Init.P50 > 0 &&
		pw.MemoryMB != c.MemoryMB && pw.RatioP50 > 0, pw)

	b := rep.Burst
	if b == nil {
		t.Fatal("no burst scenario")
	}
	check("burst", b.N == 30 && b.Accepted == 30 && b.Completed == 30 && b.Failed == 0 &&
		b.AllDoneMs >= 100 && b.ObservedMs >= b.AllDoneMs-1000 && b.PeakContainers >= 1 && b.PeakContainers <= b.ContainerLimit &&
		b.DistinctContainers >= 1 && b.DistinctContainers <= b.N && b.IdealMs >= 100 && b.IdealColdMs > b.IdealMs &&
		b.FloorMs > 100 && b.RatioFloor > 0, b)

	sl := rep.StepLoad
	if sl == nil {
		t.Fatal("no stepload scenario")
	}
	// 100/s for 2 s: every call answered; the run time is the action's
	// 10 ms sleep and more; the containers needed follow from it.
	check("stepload", sl.Sent == 200 && sl.Errors == 0 && sl.Latency.N == 200 && sl.RunMs.N == 200 &&
		sl.RunMs.Mean >= 10 && sl.Needed == int(math.Ceil(100*sl.RunMs.Mean/1000)) && sl.NeededNominal == 1 &&
		sl.PeakContainers >= 1 && sl.EndContainers <= sl.PeakContainers &&
		sl.Ratio == float64(sl.PeakContainers)/float64(sl.Needed), sl)

	mn := rep.Many
	if mn == nil {
		t.Fatal("no many scenario")
	}
	check("many", mn.Actions == 25 && mn.Invocations == 75 && mn.Errors == 0 && mn.Queues == 25 &&
		mn.RSSBeforeBytes > 1<<20 && mn.RSSAfterBytes > 1<<20 && mn.IdleCPUBefore >= 0 && mn.IdleCPUAfter >= 0 &&
		mn.GoHeapBeforeBytes > 1<<20 && mn.GoHeapAfterBytes > 1<<20 && strings.HasPrefix(mn.GoHeap, "HeapAlloc") &&
		mn.ParkedContainers >= 1 && mn.ParkedContainers <= 25 && mn.ParkedWindowSeconds > 0 && mn.IdleCPUParked >= 0, mn)

	for _, f := range []string{"chart.svg", "report.md"} {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil || len(b) < 500 {
			t.Errorf("%s: %d bytes, %v", f, len(b), err)
		}
	}
}

// TestNativeKind runs the warm and throughput scenarios with --kind native:
// the no-op built from nativeSource, sent base64 as a native action and run
// by the floor as the same binary.
func TestNativeKind(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the native action and starts a standalone Eddy")
	}
	out := t.TempDir()
	ctx, cancel := runContext(t)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := Main(ctx, []string{"--quick", "--eddy", eddyBin, "--backend", "process", "--kind", "native",
		"--only", "warm,throughput", "--levels", "1,4", "--out", out}, &stdout, &stderr)
	t.Logf("eddy bench --kind native:\n%s", stdout.String())
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	var rep report
	readJSON(t, filepath.Join(out, "bench.json"), &rep)
	if rep.Machine.Kind != "native" || rep.Warm == nil || rep.Throughput == nil || len(rep.Throughput.Levels) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	w := rep.Warm
	if w.Errors != 0 || w.Eddy.N != 300 || w.Floor.N != 300 || w.Floor.P50 >= w.Eddy.P50 {
		t.Errorf("warm: %+v", w)
	}
	for _, l := range rep.Throughput.Levels {
		if l.Eddy.Errors != 0 || l.Floor.Errors != 0 || l.Eddy.Calls == 0 || l.Floor.Calls == 0 {
			t.Errorf("throughput level %d: %+v", l.Concurrency, l)
		}
	}
}

// runContext is a bench run's context: a guard against a hung run, not a
// bound on its speed (on a busy 2-core machine the quick run takes
// minutes). It ends a little before the test binary's own -timeout, so
// that a hung run fails with bench's own error and output rather than the
// binary's panic; without a -timeout it never ends.
func runContext(t *testing.T) (context.Context, context.CancelFunc) {
	dl, ok := t.Deadline()
	if !ok {
		return context.WithCancel(context.Background())
	}
	// Keep a tenth of what is left (at most a minute) for the report.
	left := time.Until(dl)
	return context.WithDeadline(context.Background(), dl.Add(-min(left/10, time.Minute)))
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestDist(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := dist(ds)
	want := Dist{N: 100, Mean: 50.5, Min: 1, P50: 50, P90: 90, P99: 99, Max: 100}
	if d != want {
		t.Errorf("dist = %+v, want %+v", d, want)
	}
	if (dist(nil) != Dist{}) {
		t.Errorf("dist(nil) = %+v", dist(nil))
	}
	if d := dist([]time.Duration{3 * time.Millisecond}); d.P50 != 3 || d.P99 != 3 {
		t.Errorf("one sample: %+v", d)
	}
}

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	c, err := parseFlags([]string{"--quick"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if c.warmN != 300 || c.coldN != 3 || c.burstN != 30 || c.manyN != 25 || len(c.only) != len(allScenarios) || c.idle != 2*time.Second {
		t.Errorf("quick config: %+v", c)
	}
	c, err = parseFlags(nil, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if c.warmN != 10000 || c.coldN != 30 || c.burstN != 1000 || c.manyN != 1000 || c.tputDur != 5*time.Second {
		t.Errorf("full config: %+v", c)
	}
	for _, bad := range [][]string{{"--backend", "k8s"}, {"--only", "warm,nope"}, {"--levels", "1,x"}, {"--kind", "java"}, {"extra"}} {
		if _, err := parseFlags(bad, &stderr); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestSVG(t *testing.T) {
	r := &report{Machine: Machine{CPUModel: "X <&>", Cores: 2, Backend: "process", Kind: "python:3.11"}}
	s := r.svg()
	if !strings.HasPrefix(s, "<svg") || !strings.Contains(s, "X &lt;&amp;&gt;") || !strings.Contains(s, "not run") {
		t.Errorf("empty report svg:\n%s", s)
	}
	r.Warm = &WarmResult{Eddy: Dist{P50: 1, P90: 2, P99: 3}, Floor: Dist{P50: 0.1, P90: 0.2, P99: 0.3}}
	r.Throughput = &ThroughputResult{Levels: []Level{{Concurrency: 1, Eddy: Load{PerSecond: 500}, Floor: Load{PerSecond: 2500}, RatioTput: 0.2}}}
	s = r.svg()
	if !strings.Contains(s, "c=1") || !strings.Contains(s, "20%") || strings.Count(s, "<rect") < 7 {
		t.Errorf("svg:\n%s", s)
	}
}

// TestStepCodes: every kind's step-load action is its sleep action with
// the 100 ms sleep made 10 ms.
func TestStepCodes(t *testing.T) {
	kinds := map[string]actionCodes{}
	for k, c := range interpreted {
		kinds[k] = c
	}
	for k, c := range otherLanguages {
		kinds[k] = c
	}
	for k, c := range kinds {
		got, err := withStep(k, c)
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		if got.step == "" || got.step == c.sleep || got.noop != c.noop || got.sleep != c.sleep {
			t.Errorf("%s: step action not derived from the sleep one:\n%s", k, got.step)
		}
		for _, ed := range stepEdits {
			if strings.Contains(got.step, ed.from) {
				t.Errorf("%s: the step action still sleeps 100 ms (%s):\n%s", k, ed.from, got.step)
			}
		}
	}
	if _, err := withStep("none", actionCodes{sleep: "sleep forever"}); err == nil {
		t.Error("a sleep action without a known sleep call got a step variant")
	}
}
