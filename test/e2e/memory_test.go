package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// procStatusKB reads a "Vm...:  N kB" field of /proc/PID/status.
func procStatusKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			f := strings.Fields(rest)
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// stream does a request with the guest key and reads the answer to the
// end without keeping it; it returns the status and the bytes read.
func (e *eddy) stream(method, path string, body []byte) (int, int64) {
	e.t.Helper()
	resp := e.do(guestAuth, method, path, body)
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, n
}

// TestMemoryBounded drives the request shapes that once grew eddy's memory
// with the parallelism of its clients (docs/internals.md, "Memory
// bounds"), each against a freshly started `eddy standalone` (built
// without the race detector) on the same data dir, and compares the peak RSS (VmHWM, reset before the shape)
// above the process's RSS at the start of the shape:
//
//   - activation lists with docs over records with 8 MB of logs each:
//     three parallel lists of every record hold at most what three lists
//     of ONE record hold (the lists stream, one record at a time);
//     holding pages whole holds 6 times that;
//   - twelve parallel 40 MB action PUTs hold at most what the body budget
//     admits at once (3 of them: 128 MB / 40 MB) times one PUT's peak;
//     without the budget, twelve times that.
//
// With GOGC=100 the Go heap grows to twice what is live before it
// collects, and what is live is at most the process's start (its RSS,
// base) and what the requests in flight hold (each at most the peak of
// one alone, one): so the bound on the peak above base is
// base + 2 × in flight × one.
func TestMemoryBounded(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	// Built without the race detector, which multiplies memory use by
	// 5 to 10 (and slows the lists past their write deadline on a busy
	// machine): this test measures the memory of the binary users run.
	bin := filepath.Join(t.TempDir(), "eddy")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/eddy")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building eddy: %v\n%s", err, out)
	}
	dataDir := t.TempDir()
	e := startEddyBin(t, bin, "process", dataDir)
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", e.cmd.Process.Pid), []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS of eddy (/proc/PID/clear_refs): %v", err)
	}
	const records, logKB = 6, 8 << 10
	e.createAction("logger", "python:3.11", "def main(a):\n    line = 'x' * 1023\n    for i in range(a['kb']):\n        print(line)\n    return {}\n",
		map[string]any{"logs": 10, "timeout": 120000})
	for range records {
		e.mustCall(200, "POST", "/api/v1/namespaces/_/actions/logger?blocking=true&result=true", map[string]any{"kb": logKB})
	}
	e.stop()

	// shape runs fn against a new eddy and returns its RSS at the start of
	// fn and the peak above it, in kB.
	shape := func(name string, fn func(e *eddy)) (base, peak int64) {
		e := startEddyBin(t, bin, "process", dataDir)
		pid := e.cmd.Process.Pid
		e.stream("GET", "/api/v1/namespaces/_/activations?limit=1", nil) // warm up the path
		base = procStatusKB(t, pid, "VmRSS")
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
			t.Fatal(err)
		}
		fn(e)
		peak = procStatusKB(t, pid, "VmHWM") - base
		t.Logf("%s: RSS %d MB at start, peak %+d MB", name, base>>10, peak>>10)
		e.stop()
		return base, peak
	}
	parallel := func(n int, fn func(i int)) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { fn(i) })
		}
		wg.Wait()
	}
	list := func(e *eddy, limit int) int64 {
		code, n := e.stream("GET", fmt.Sprintf("/api/v1/namespaces/_/activations?docs=true&limit=%d", limit), nil)
		if code != 200 {
			t.Errorf("list: %d", code)
		}
		return n
	}

	var oneList, allList int64
	_, one := shape("one list of 1 record", func(e *eddy) { oneList = list(e, 1) })
	const lists = 3
	base, all := shape(fmt.Sprintf("%d parallel lists of %d records", lists, records), func(e *eddy) {
		var mu sync.Mutex
		parallel(lists, func(int) {
			n := list(e, 200)
			mu.Lock()
			allList = max(allList, n)
			mu.Unlock()
		})
	})
	if oneList < logKB<<10 || allList < records*oneList*9/10 {
		t.Fatalf("lists of %d and %d bytes: the records do not have the logs this test needs", oneList, allList)
	}
	if bound := base + 2*lists*one; all > bound {
		t.Errorf("%d parallel lists of %d records peaked %d MB above start; bound %d MB (start RSS + 2 × %d × one list of one record)",
			lists, records, all>>10, bound>>10, lists)
	}

	const putMB, puts, budgetMB = 40, 12, 128
	body := []byte(fmt.Sprintf(`{"exec":{"kind":"python:3.11","code":"# %s\ndef main(a):\n    return a\n"}}`,
		bytes.Repeat([]byte("x"), putMB<<20)))
	put := func(e *eddy, i int) {
		for {
			status, _ := e.stream("PUT", fmt.Sprintf("/api/v1/namespaces/_/actions/big%d?overwrite=true", i), body)
			if status == 200 {
				return
			}
			if status != 503 {
				t.Errorf("PUT %d MB: %d", putMB, status)
				return
			}
		}
	}
	_, onePut := shape("one 40 MB PUT", func(e *eddy) { put(e, 0) })
	base, allPuts := shape(fmt.Sprintf("%d parallel %d MB PUTs", puts, putMB), func(e *eddy) {
		parallel(puts, func(i int) { put(e, i) })
	})
	admitted := int64(budgetMB / putMB)
	if bound := base + 2*admitted*onePut; allPuts > bound {
		t.Errorf("%d parallel %d MB PUTs peaked %d MB above start; bound %d MB (start RSS + 2 × %d admitted at once × one PUT)",
			puts, putMB, allPuts>>10, bound>>10, admitted)
	}
}
