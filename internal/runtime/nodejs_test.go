package runtime

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
)

// zipFile is one entry of a test zip.
type zipFile struct {
	body string
	mode os.FileMode
}

// zipBase64 returns the base64 of a zip holding files.
func zipBase64(t *testing.T, files map[string]zipFile) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, f := range files {
		hdr := &zip.FileHeader{Name: name, Method: zip.Deflate}
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr.SetMode(mode)
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// collectAsync collects one activation's logs in the background; it
// delivers nil if the sentinels do not come.
func (h *harness) collectAsync() <-chan []string {
	ch := make(chan []string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		logs, _, complete := container.CollectLogs(ctx, h.logs, 1<<30)
		if !complete {
			logs = nil
		}
		ch <- logs
	}()
	return ch
}

// A global function main, not exported; module state kept across runs.
const jsHello = `let calls = 0;
console.log("loading");
function main(args) {
  calls++;
  console.log("hello", args.name);
  console.error("to stderr");
  return {
    greeting: "Hello " + (args.name || "stranger"),
    activation: process.env.__OW_ACTIVATION_ID,
    apihost: process.env.__OW_API_HOST,
    initvar: process.env.INIT_VAR,
    pid: process.pid,
    calls,
  };
}
`

func TestNodejsHello(t *testing.T) {
	h := newHarness(t, LauncherNodejs, "__OW_API_HOST=http://api.test")
	if st, body := h.init(jsHello, false, map[string]string{"INIT_VAR": "from-init"}); st != 200 || body["ok"] != true {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
	pid := h.srv.childPid()
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("act%d", i)
		st, res := h.run(map[string]any{"name": "Eddy"}, id)
		if st != 200 {
			t.Fatalf("run %d: %d %v", i, st, res)
		}
		if res["greeting"] != "Hello Eddy" || res["activation"] != id || res["apihost"] != "http://api.test" || res["initvar"] != "from-init" {
			t.Errorf("run %d: result %v", i, res)
		}
		// Warm state: the same process, its module state kept.
		if int(res["pid"].(float64)) != pid || int(res["calls"].(float64)) != i {
			t.Errorf("run %d: pid %v calls %v, want pid %d calls %d", i, res["pid"], res["calls"], pid, i)
		}
		logs := h.collect()
		want := 2
		if i == 1 { // init's output is the first run's
			want = 3
			if !strings.HasSuffix(logs[0], "stdout: loading") {
				t.Errorf("the first run's logs %q lack the module's output first", logs)
			}
		}
		if !hasLine(logs, "stdout", "hello Eddy") || !hasLine(logs, "stderr", "to stderr") || len(logs) != want {
			t.Errorf("run %d logs: %q", i, logs)
		}
	}
}

func TestNodejsAsyncExportedMain(t *testing.T) {
	h := newHarness(t, LauncherNodejs)
	code := `exports.handler = async function (args) {
  await new Promise((resolve) => setTimeout(resolve, 20));
  return { twice: 2 * args.n };
};
module.exports.later = (args) => new Promise((resolve) => setTimeout(() => resolve({ later: args.n }), 10));
`
	st, body := h.post("/init", map[string]any{"value": map[string]any{"main": "handler", "code": code}})
	if st != 200 {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
	for i := 0; i < 2; i++ {
		if st, res := h.run(map[string]any{"n": 21}, "a"); st != 200 || res["twice"] != float64(42) {
			t.Errorf("run: %d %v", st, res)
		}
		h.collect()
	}
}

func TestNodejsZip(t *testing.T) {
	h := newHarness(t, LauncherNodejs)
	code := zipBase64(t, map[string]zipFile{
		"package.json":   {body: `{"name":"t","main":"lib/entry.js"}`},
		"lib/entry.js":   {body: "const helper = require('./helper');\nmodule.exports.main = (args) => Promise.resolve({ shout: helper.shout(args.s) });\n"},
		"lib/helper.js":  {body: "exports.shout = (s) => s.toUpperCase() + '!';\n"},
		"data/readme.md": {body: "packaged"},
	})
	if st, body := h.init(code, true, nil); st != 200 {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
	if st, res := h.run(map[string]any{"s": "hi"}, "a"); st != 200 || res["shout"] != "HI!" {
		t.Errorf("run: %d %v", st, res)
	}
	h.collect()

	h2 := newHarness(t, LauncherNodejs)
	bad := zipBase64(t, map[string]zipFile{"main.js": {body: "exports.main = () => ({})\n"}})
	if st, body := h2.init(bad, true, nil); st != 502 || body["error"] != msgNodeZip {
		t.Errorf("zip without entry point: %d %v", st, body)
	}
	h2.collect()
}

func TestNodejsInitFailures(t *testing.T) {
	h := newHarness(t, LauncherNodejs)
	st, body := h.init("function main(args {\n  return {};\n}\n", false, nil)
	if st != 502 || !strings.Contains(fmt.Sprint(body["error"]), "SyntaxError") {
		t.Fatalf("syntax error: %d %v", st, body)
	}
	if logs := h.collect(); !hasLine(logs, "stderr", "SyntaxError") {
		t.Errorf("init logs lack the error: %q", logs)
	}
	if st, body := h.run(map[string]any{}, "a"); st != 500 || body["error"] != msgNoAction {
		t.Errorf("run after failed init: %d %v", st, body)
	}
	h.collect()

	h2 := newHarness(t, LauncherNodejs)
	st, body = h2.post("/init", map[string]any{"value": map[string]any{"main": "nope", "code": "function other() { return {}; }\n"}})
	if st != 502 || !strings.Contains(fmt.Sprint(body["error"]), "nope") {
		t.Errorf("missing main: %d %v", st, body)
	}
	h2.collect()
}

func TestNodejsErrorsAndResults(t *testing.T) {
	h := newHarness(t, LauncherNodejs)
	code := `async function main(args) {
  switch (args.kind) {
    case "throw": throw new Error("boom");
    case "reject": return Promise.reject(new TypeError("nope"));
    case "rejectObject": return Promise.reject({ code: 7 });
    case "number": return 42;
    case "undefined": return;
    case "array": return [1, 2];
    case "cycle": { const o = {}; o.o = o; return o; }
  }
  return { fine: true };
}
`
	if st, body := h.init(code, false, nil); st != 200 {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()

	st, res := h.run(map[string]any{"kind": "throw"}, "a")
	if st != 200 || res["error"] != "Error: boom" {
		t.Errorf("exception: %d %v", st, res)
	}
	if logs := h.collect(); !hasLine(logs, "stderr", "Error: boom") || !hasLine(logs, "stderr", "at main") {
		t.Errorf("exception logs lack the stack: %q", logs)
	}
	st, res = h.run(map[string]any{"kind": "reject"}, "b")
	if st != 200 || res["error"] != "TypeError: nope" {
		t.Errorf("rejection: %d %v", st, res)
	}
	h.collect()
	st, res = h.run(map[string]any{"kind": "rejectObject"}, "c")
	if e, _ := res["error"].(map[string]any); st != 200 || e["code"] != float64(7) {
		t.Errorf("rejection with an object: %d %v", st, res)
	}
	h.collect()
	for _, kind := range []string{"number", "undefined"} {
		st, res = h.run(map[string]any{"kind": kind}, "d")
		if st != 200 || res["error"] != "The action did not return a dictionary." {
			t.Errorf("%s result: %d %v", kind, st, res)
		}
		h.collect()
	}
	st, raw, _ := h.postRaw("/run", map[string]any{"value": map[string]any{"kind": "array"}})
	if st != 200 || strings.TrimSpace(string(raw)) != "[1,2]" {
		t.Errorf("array result: %d %s", st, raw)
	}
	h.collect()
	st, res = h.run(map[string]any{"kind": "cycle"}, "e")
	if st != 200 || !strings.Contains(fmt.Sprint(res["error"]), "not JSON") {
		t.Errorf("cyclic result: %d %v", st, res)
	}
	h.collect()
	// The process survived all of it.
	if st, res := h.run(map[string]any{}, "f"); st != 200 || res["fine"] != true {
		t.Errorf("after errors: %d %v", st, res)
	}
	h.collect()
}

// Much more output than a pipe holds, through console and process.stdout:
// every line must be out before the answer, hence before the sentinels.
func TestNodejsLogsFlushedBeforeSentinels(t *testing.T) {
	h := newHarness(t, LauncherNodejs)
	code := `function main(args) {
  const pad = "x".repeat(200);
  for (let i = 0; i < args.n; i++) {
    console.log("out", i, pad);
    if (i % 2 === 0) console.error("err", i, pad);
  }
  process.stdout.write("raw stdout line\n");
  process.stderr.write("raw stderr line\n");
  console.warn("warned");
  return { done: args.n };
}
`
	if st, body := h.init(code, false, nil); st != 200 {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
	const n = 2000 // ~400 KB on stdout
	for run := 0; run < 2; run++ {
		// More lines than the harness buffers: read them while the action runs.
		collected := h.collectAsync()
		if st, res := h.run(map[string]any{"n": n}, "a"); st != 200 || res["done"] != float64(n) {
			t.Fatalf("run: %d %v", st, res)
		}
		logs := <-collected
		if logs == nil {
			t.Fatal("sentinels missing")
		}
		var out, errs int
		for _, l := range logs {
			switch {
			case strings.Contains(l, " stdout: out "):
				out++
			case strings.Contains(l, " stderr: err "):
				errs++
			}
		}
		if out != n || errs != n/2 || !hasLine(logs, "stdout", "raw stdout line") || !hasLine(logs, "stderr", "raw stderr line") || !hasLine(logs, "stderr", "warned") {
			t.Errorf("run %d: %d stdout and %d stderr lines of %d logged (want %d and %d), raw/warn lines present: %v %v %v",
				run, out, errs, len(logs), n, n/2, hasLine(logs, "stdout", "raw stdout line"), hasLine(logs, "stderr", "raw stderr line"), hasLine(logs, "stderr", "warned"))
		}
	}
}
