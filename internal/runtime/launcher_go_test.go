package runtime

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goOrSkip skips when the go tool is not on PATH.
func goOrSkip(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not found")
	}
	return p
}

const goSource = `package main

import (
	"fmt"
	"os"
)

var calls int

func Hello(args map[string]interface{}) map[string]interface{} {
	calls++
	fmt.Println("hello", args["name"])
	fmt.Fprintln(os.Stderr, "to stderr")
	if args["panic"] == true {
		panic("boom")
	}
	return map[string]interface{}{"greeting": fmt.Sprint("Hello ", args["name"]), "calls": calls, "activation": os.Getenv("__OW_ACTIVATION_ID")}
}
`

// TestGoSource: a Go source is compiled at /init; init's main "hello"
// names func Hello; state lives across runs; a panic is the run's error
// and the child serves the next run.
func TestGoSource(t *testing.T) {
	goOrSkip(t)
	h := newHarness(t, LauncherGo)
	st, body := h.post("/init", map[string]any{"value": map[string]any{"main": "hello", "code": goSource}})
	if st != 200 || body["ok"] != true {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
	for i, name := range []string{"Ada", "Bob"} {
		st, res := h.run(map[string]any{"name": name}, "act"+name)
		if st != 200 || res["greeting"] != "Hello "+name || res["calls"] != float64(i+1) || res["activation"] != "act"+name {
			t.Fatalf("run %d: %d %v", i, st, res)
		}
		logs := h.collect()
		if !hasLine(logs, "stdout", "hello "+name) || !hasLine(logs, "stderr", "to stderr") {
			t.Fatalf("run %d logs %q", i, logs)
		}
	}
	st, res := h.run(map[string]any{"name": "X", "panic": true}, "p")
	if st != 200 || res["error"] != "panic: boom" {
		t.Fatalf("panic: %d %v", st, res)
	}
	if logs := h.collect(); !hasLine(logs, "stderr", "panic: boom") {
		t.Fatalf("panic logs %q", logs)
	}
	if st, res := h.run(map[string]any{"name": "Cy"}, "c"); st != 200 || res["calls"] != 4.0 {
		t.Fatalf("after the panic: %d %v", st, res)
	}
}

// TestGoCompileError: source that does not compile fails /init with 502
// and the compiler's message.
func TestGoCompileError(t *testing.T) {
	goOrSkip(t)
	h := newHarness(t, LauncherGo)
	st, body := h.init("package main\n\nfunc Main(args map[string]interface{}) map[string]interface{} {\n\treturn nope\n}\n", false, nil)
	if st != 502 || !strings.Contains(body["error"].(string), "undefined: nope") {
		t.Fatalf("init: %d %v", st, body)
	}
	if st, body := h.init(goSource, false, nil); st != 502 || !strings.Contains(body["error"].(string), "undefined: Main") {
		t.Fatalf("no Main: %d %v", st, body)
	}
}

// TestGoPrecompiledZip: a zip whose "exec" is an ELF executable runs as
// it is (here the launcher compiled elsewhere with an action's Main).
func TestGoPrecompiledZip(t *testing.T) {
	goTool := goOrSkip(t)
	dir := t.TempDir()
	src := strings.Replace(goSource, "func Hello(", "func Main(", 1)
	for name, body := range map[string]string{"main.go": src, "main__.go": goLauncherSource, "go.mod": "module exec\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(goTool, "build", "-o", "exec", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "exec"))
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{
		zipBase64(t, map[string]zipFile{"exec": {body: string(bin), mode: 0o644}}),
		base64.StdEncoding.EncodeToString(bin),
	} {
		h := newHarness(t, LauncherGo, "OW_WAIT_FOR_ACK=1")
		if st, body := h.init(code, true, nil); st != 200 || body["ok"] != true {
			t.Fatalf("init: %d %v", st, body)
		}
		if st, res := h.run(map[string]any{"name": "Zed"}, "z"); st != 200 || res["greeting"] != "Hello Zed" {
			t.Fatalf("run: %d %v", st, res)
		}
	}
}

// TestGoMainNames: init's main is capitalized, as upstream does.
func TestGoMainNames(t *testing.T) {
	for in, want := range map[string]string{"": "Main", "main": "Main", "hello": "Hello", "Hello": "Hello", "été": "Été"} {
		if got, err := goMainName(in); err != nil || got != want {
			t.Errorf("goMainName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := goMainName("a.b"); err == nil {
		t.Error("a.b is not an identifier")
	}
}

const goConcurrent = `package main

import (
	"fmt"
	"os"
	"time"
)

func Main(args map[string]interface{}) map[string]interface{} {
	i := int(args["i"].(float64))
	fmt.Println("begin", i)
	time.Sleep(500 * time.Millisecond)
	fmt.Fprintln(os.Stderr, "err", i)
	time.Sleep(500 * time.Millisecond)
	fmt.Println("end", i)
	fmt.Printf("partial %d", i)
	fmt.Print(" done")
	return map[string]interface{}{"i": i}
}
`

// TestGoConcurrentRunsKeepTheirLogs: with concurrency N the go launcher
// compiles once and runs N copies, one per slot, as native does; each
// run's logs are its own.
func TestGoConcurrentRunsKeepTheirLogs(t *testing.T) {
	goOrSkip(t)
	h := newHarness(t, LauncherGo)
	st, body := h.initConcurrent(goConcurrent, 3)
	if st != 200 || body["ok"] != true || body["concurrency"] != float64(3) {
		t.Fatalf("init: %d %v", st, body)
	}
	runOverlapping(t, h, 3, time.Second, pyMarkers)
}
