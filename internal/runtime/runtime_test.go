package runtime

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
)

// harness is a Server behind a loopback HTTP server, with its stdout and
// stderr read into one LogLine channel as a container backend would.
type harness struct {
	t      *testing.T
	srv    *Server
	url    string
	logs   chan container.LogLine
	dm     *container.Demux // concurrent mode: the one reader of logs (concurrent_test.go)
	initOK bool             // the last call was a successful /init: no sentinels to collect
}

func newHarness(t *testing.T, launcher string, env ...string) *harness {
	t.Helper()
	switch launcher {
	case LauncherPython:
		if _, err := exec.LookPath("python3"); err != nil {
			t.Skip("python3 not found")
		}
	case LauncherNodejs:
		if _, err := exec.LookPath("node"); err != nil {
			t.Skip("node not found")
		}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{
		Launcher: launcher, WorkDir: t.TempDir(),
		Env:    append(os.Environ(), env...),
		Stdout: outW, Stderr: errW,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	h := &harness{t: t, srv: srv, url: hs.URL, logs: make(chan container.LogLine, 1000)}
	done := make(chan struct{}, 2)
	read := func(r *os.File, stream string) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			h.logs <- container.LogLine{Time: time.Now(), Stream: stream, Text: sc.Text()}
		}
		done <- struct{}{}
	}
	go read(outR, container.Stdout)
	go read(errR, container.Stderr)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		outW.Close()
		errW.Close()
		<-done
		<-done
		outR.Close()
		errR.Close()
	})
	return h
}

// postRaw sends body to path and returns the status, the raw answer and its
// content type.
func (h *harness) postRaw(path string, body any) (int, []byte, string) {
	h.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.Post(h.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	// A successful /init writes no sentinels unless it entered concurrent mode.
	if path == "/init" {
		h.initOK = resp.StatusCode == 200 && !bytes.Contains(raw, []byte(`"concurrency"`))
	}
	return resp.StatusCode, raw, resp.Header.Get("Content-Type")
}

// post sends body to path and returns the status and the answer.
func (h *harness) post(path string, body any) (int, map[string]any) {
	h.t.Helper()
	status, raw, _ := h.postRaw(path, body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		h.t.Fatalf("%s answered %d with non-object %q", path, status, raw)
	}
	return status, m
}

func (h *harness) init(code string, binary bool, env map[string]string) (int, map[string]any) {
	h.t.Helper()
	return h.post("/init", map[string]any{"value": map[string]any{
		"name": "test", "main": "main", "binary": binary, "code": code, "env": env,
	}})
}

func (h *harness) run(value any, activationID string) (int, map[string]any) {
	h.t.Helper()
	return h.post("/run", map[string]any{
		"value": value, "namespace": "guest", "action_name": "/guest/test", "action_version": "0.0.1",
		"activation_id": activationID, "transaction_id": "tid", "deadline": "9999999999999",
	})
}

// collect returns one activation's formatted log lines; both sentinels must
// come. Right after a successful /init it returns nothing: a successful
// /init writes no sentinels (as in OpenWhisk's runtimes), its lines are the
// first run's.
func (h *harness) collect() []string {
	h.t.Helper()
	if h.initOK {
		h.initOK = false
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	logs, _, complete := container.CollectLogs(ctx, h.logs, 1<<20)
	if !complete {
		h.t.Fatalf("sentinels missing; logs so far: %q", logs)
	}
	return logs
}

func hasLine(logs []string, stream, text string) bool {
	for _, l := range logs {
		if strings.Contains(l, " "+stream+": ") && strings.Contains(l, text) {
			return true
		}
	}
	return false
}

const pyHello = `import os, sys
calls = 0
print("loading")
def main(args):
    global calls
    calls += 1
    print("hello", args.get("name"))
    print("to stderr", file=sys.stderr)
    return {"greeting": "Hello " + args.get("name", "stranger"),
            "activation": os.environ.get("__OW_ACTIVATION_ID"),
            "apihost": os.environ.get("__OW_API_HOST"),
            "initvar": os.environ.get("INIT_VAR"),
            "pid": os.getpid(), "calls": calls}
`

func TestPythonHello(t *testing.T) {
	h := newHarness(t, LauncherPython, "__OW_API_HOST=http://api.test")
	if st, body := h.init(pyHello, false, map[string]string{"INIT_VAR": "from-init"}); st != 200 || body["ok"] != true {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
	pid := h.srv.childPid()

	for i := 1; i <= 2; i++ {
		id := fmt.Sprintf("act%d", i)
		st, res := h.run(map[string]any{"name": "Eddy"}, id)
		if st != 200 {
			t.Fatalf("run %d: %d %v", i, st, res)
		}
		if res["greeting"] != "Hello Eddy" || res["activation"] != id || res["apihost"] != "http://api.test" || res["initvar"] != "from-init" {
			t.Errorf("run %d: result %v", i, res)
		}
		// Warm state: the same process, its globals kept.
		if int(res["pid"].(float64)) != pid || int(res["calls"].(float64)) != i {
			t.Errorf("run %d: pid %v calls %v, want pid %d calls %d", i, res["pid"], res["calls"], pid, i)
		}
		logs := h.collect()
		want := 2
		if i == 1 { // init's output is the first run's
			want = 3
			if !hasLine(logs, "stdout", "loading") || !strings.HasSuffix(logs[0], "stdout: loading") {
				t.Errorf("the first run's logs %q lack the module's output first", logs)
			}
		}
		if !hasLine(logs, "stdout", "hello Eddy") || !hasLine(logs, "stderr", "to stderr") || len(logs) != want {
			t.Errorf("run %d logs: %q", i, logs)
		}
	}
}

func TestPythonSyntaxErrorAtInit(t *testing.T) {
	h := newHarness(t, LauncherPython)
	st, body := h.init("def main(args:\n  return {}\n", false, nil)
	if st != 502 || !strings.Contains(fmt.Sprint(body["error"]), "SyntaxError") {
		t.Fatalf("init: %d %v", st, body)
	}
	if logs := h.collect(); !hasLine(logs, "stderr", "SyntaxError") || !hasLine(logs, "stderr", "Traceback") {
		t.Errorf("init logs lack the traceback: %q", logs)
	}
	if st, body := h.run(map[string]any{}, "a"); st != 500 || body["error"] != msgNoAction {
		t.Errorf("run after failed init: %d %v", st, body)
	}
	h.collect()
}

func TestPythonZip(t *testing.T) {
	h := newHarness(t, LauncherPython)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range map[string]string{
		"__main__.py":     "import helper\ndef entry(args):\n    return {'twice': helper.twice(args['n'])}\n",
		"helper.py":       "def twice(n):\n    return 2 * n\n",
		"data/readme.txt": "packaged",
	} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, body)
	}
	zw.Close()
	st, body := h.post("/init", map[string]any{"value": map[string]any{
		"main": "entry", "binary": true, "code": base64.StdEncoding.EncodeToString(buf.Bytes())}})
	if st != 200 {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
	if st, res := h.run(map[string]any{"n": 21}, "a"); st != 200 || res["twice"] != float64(42) {
		t.Errorf("run: %d %v", st, res)
	}
	h.collect()
}

func TestPythonMissingMain(t *testing.T) {
	h := newHarness(t, LauncherPython)
	st, body := h.post("/init", map[string]any{"value": map[string]any{"code": "def other(a):\n  return a\n", "main": "nope"}})
	if st != 502 || !strings.Contains(fmt.Sprint(body["error"]), "nope") {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
}

func TestPythonExceptionAndNonDict(t *testing.T) {
	h := newHarness(t, LauncherPython)
	code := "def main(args):\n  if args.get('kind') == 'raise':\n    raise ValueError('boom')\n  if args.get('kind') == 'list':\n    return [1, 2]\n  return 42\n"
	if st, body := h.init(code, false, nil); st != 200 {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()

	st, res := h.run(map[string]any{"kind": "raise"}, "a")
	if st != 200 || res["error"] != "boom" {
		t.Errorf("exception: %d %v", st, res)
	}
	if logs := h.collect(); !hasLine(logs, "stderr", "Traceback") || !hasLine(logs, "stderr", "ValueError: boom") {
		t.Errorf("exception logs: %q", logs)
	}

	st, res = h.run(map[string]any{}, "b")
	if st != 200 || res["error"] != "The action did not return a dictionary." {
		t.Errorf("non-dict: %d %v", st, res)
	}
	h.collect()

	resp, err := http.Post(h.url+"/run", "application/json", strings.NewReader(`{"value":{"kind":"list"}}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(raw)) != "[1, 2]" {
		t.Errorf("array result: %d %s", resp.StatusCode, raw)
	}
	h.collect()
}

func TestReinitAndRunBeforeInit(t *testing.T) {
	h := newHarness(t, LauncherNative)
	if st, body := h.run(map[string]any{}, "a"); st != 500 || body["error"] != msgNoAction {
		t.Errorf("run before init: %d %v", st, body)
	}
	h.collect()
	if st, body := h.init("", false, nil); st != 403 || body["error"] != msgNoCode {
		t.Errorf("init without code: %d %v", st, body)
	}
	h.collect()
	script := "#!/bin/sh\nwhile read l; do echo '{}' >&3; done\n"
	if st, body := h.init(script, false, nil); st != 200 {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
	if st, body := h.init(script, false, nil); st != 403 || body["error"] != msgReinit {
		t.Errorf("re-init: %d %v", st, body)
	}
	h.collect()
}

// A bash actionloop: one line in, one line out on fd 3, logs on both streams.
const bashLoop = `#!/bin/bash
n=0
while read -r line; do
  n=$((n+1))
  echo "got line $n"
  echo "stderr line $n" >&2
  case "$line" in
    *'"bad"'*) echo "not json" >&3 ;;
    *) echo "{\"n\": $n, \"pid\": $$, \"msg\": $line}" >&3 ;;
  esac
done
`

func TestNativeShellActionloop(t *testing.T) {
	h := newHarness(t, LauncherNative)
	if st, body := h.init(bashLoop, false, nil); st != 200 {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
	pid := h.srv.childPid()
	for i := 1; i <= 2; i++ {
		st, res := h.run(map[string]any{"x": i}, fmt.Sprintf("id%d", i))
		if st != 200 {
			t.Fatalf("run %d: %d %v", i, st, res)
		}
		msg, _ := res["msg"].(map[string]any)
		value, _ := msg["value"].(map[string]any)
		if int(res["n"].(float64)) != i || int(res["pid"].(float64)) != pid || msg["activation_id"] != fmt.Sprintf("id%d", i) || value["x"] != float64(i) {
			t.Errorf("run %d: %v", i, res)
		}
		logs := h.collect()
		if !hasLine(logs, "stdout", fmt.Sprintf("got line %d", i)) || !hasLine(logs, "stderr", fmt.Sprintf("stderr line %d", i)) {
			t.Errorf("run %d logs: %q", i, logs)
		}
	}
	if st, res := h.run("bad", "id3"); st != 502 || res["error"] != msgNotDictOrArr {
		t.Errorf("non-JSON answer: %d %v", st, res)
	}
	h.collect()
}

func TestNativeWaitForAckBase64(t *testing.T) {
	h := newHarness(t, LauncherNative, "OW_WAIT_FOR_ACK=1")
	script := "#!/bin/sh\n[ -n \"$__OW_WAIT_FOR_ACK\" ] && echo '{\"ok\":true}' >&3\nwhile read l; do echo '{\"acked\":true}' >&3; done\n"
	if st, body := h.init(base64.StdEncoding.EncodeToString([]byte(script)), true, nil); st != 200 {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
	if st, res := h.run(map[string]any{}, "a"); st != 200 || res["acked"] != true {
		t.Errorf("run: %d %v", st, res)
	}
	h.collect()
}

func TestNativeZipExitsMidRun(t *testing.T) {
	h := newHarness(t, LauncherNative)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	hdr := &zip.FileHeader{Name: "exec", Method: zip.Deflate}
	hdr.SetMode(0o755)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "#!/bin/sh\nread l\necho 'dying' >&2\nexit 3\n")
	zw.Close()
	if st, body := h.init(base64.StdEncoding.EncodeToString(buf.Bytes()), true, nil); st != 200 {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
	if st, res := h.run(map[string]any{}, "a"); st != 502 || res["error"] != msgExited {
		t.Errorf("run: %d %v", st, res)
	}
	if logs := h.collect(); !hasLine(logs, "stderr", "dying") {
		t.Errorf("logs: %q", logs)
	}
	if st, res := h.run(map[string]any{}, "b"); st != 500 || res["error"] != msgNoAction {
		t.Errorf("run after exit: %d %v", st, res)
	}
	h.collect()
}

func TestMainReadyFD(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// run closes the fd it is given: hand it a duplicate that nothing else owns.
	fd, err := syscall.Dup(int(w.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		code <- run(ctx, []string{"--listen", "127.0.0.1:0", "--launcher", "native", "--ready-fd", fmt.Sprint(fd)}, io.Discard, &stderr)
	}()
	addr, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("ready fd: %v (%s)", err, stderr.String())
	}
	resp, err := http.Post("http://"+strings.TrimSpace(addr)+"/run", "application/json", strings.NewReader(`{"value":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Errorf("run before init: %d", resp.StatusCode)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit code %d", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no shutdown")
	}
	if c := run(context.Background(), []string{"--launcher", "cobol"}, io.Discard, io.Discard); c != 2 {
		t.Errorf("unknown launcher: exit %d, want 2", c)
	}
}

// TestOOMKillReported: when the action's process dies and the cgroup's
// oom_kill counter went up meanwhile, the answer says "oom": true.
func TestOOMKillReported(t *testing.T) {
	events := filepath.Join(t.TempDir(), "memory.events")
	if err := os.WriteFile(events, []byte("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The action bumps the counter (as the kernel would) and dies.
	script := "#!/bin/bash\nwhile read -r l; do printf 'oom 2\\noom_kill 2\\n' > " + events + "; kill -9 $$; done\n"
	s, err := NewServer(Config{Launcher: LauncherNative, WorkDir: t.TempDir(), OOMFiles: []string{"/nonexistent", events}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s)
	defer srv.Close()
	post := func(path string, body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		resp, err := http.Post(srv.URL+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if st, _ := post("/init", map[string]any{"value": map[string]any{"code": script}}); st != 200 {
		t.Fatalf("init: %d", st)
	}
	st, out := post("/run", map[string]any{"value": map[string]any{}})
	if st != 502 || out["error"] != msgExited || out["oom"] != true {
		t.Fatalf("run: %d %v", st, out)
	}
	if n, ok := oomKills([]string{events}); !ok || n != 2 {
		t.Fatalf("oomKills = %d, %v", n, ok)
	}
}

// TestMainRawIO runs the server as Main does, with pipes for stdout and
// stderr (as a container backend gives them), so that the hot path's raw
// I/O is what serves: the /run connection, the action's stdin (a line
// larger than a pipe holds, so part of it is left to a goroutine) and
// fd 3, and the sentinels through their own descriptors, after the
// action's lines. Once run returns, nothing of the server holds the pipes.
func TestMainRawIO(t *testing.T) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer readyR.Close()
	fd, err := syscall.Dup(int(readyW.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	readyW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	lines := func(r *os.File) <-chan string {
		ch := make(chan string, 100)
		go func() {
			defer close(ch)
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				ch <- sc.Text()
			}
		}()
		return ch
	}
	outLines, errLines := lines(outR), lines(errR)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--listen", "127.0.0.1:0", "--launcher", "native", "--workdir", t.TempDir(), "--ready-fd", fmt.Sprint(fd)}, outW, errW)
	}()
	addr, err := bufio.NewReader(readyR).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + strings.TrimSpace(addr)
	post := func(path string, body any) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := http.Post(url+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp.StatusCode, out
	}
	script := "#!/bin/bash\nwhile IFS= read -r l; do echo \"out ${#l}\"; echo err >&2; printf '{\"len\":%d}\\n' ${#l} >&3; done\n"
	if st, out := post("/init", map[string]any{"value": map[string]any{"code": script}}); st != 200 {
		t.Fatalf("init: %d %v", st, out)
	}
	expect := func(ch <-chan string, want ...string) {
		t.Helper()
		for _, w := range want {
			select {
			case got := <-ch:
				if got != w {
					t.Fatalf("log line %q, want %q", got, w)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no log line, want %q", w)
			}
		}
	}
	// A successful /init writes no sentinels: the first lines are the first run's.
	for _, size := range []int{10, 300 << 10, 20} {
		msg := map[string]any{"value": map[string]any{"big": strings.Repeat("x", size)}, "activation_id": "a"}
		line, _ := json.Marshal(msg)
		st, out := post("/run", msg)
		if st != 200 || out["len"] != float64(len(line)) {
			t.Fatalf("run of %d bytes: %d %v", len(line), st, out)
		}
		expect(outLines, fmt.Sprintf("out %d", len(line)), Sentinel)
		expect(errLines, "err", Sentinel)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit code %d", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown")
	}
	outW.Close()
	errW.Close()
	for _, ch := range []<-chan string{outLines, errLines} {
		select {
		case l, ok := <-ch:
			if ok {
				t.Errorf("after shutdown: %q", l)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the server still holds its stdout or stderr")
		}
	}
}

// TestPythonEnvPerRun: each run's __OW_ variables are the keys of its
// message, whatever the action did to them, and a key a run lacks is
// unset.
func TestPythonEnvPerRun(t *testing.T) {
	h := newHarness(t, LauncherPython)
	code := `import os
def main(args):
    out = {k: os.environ.get(k) for k in ("__OW_ACTIVATION_ID", "__OW_NAMESPACE", "__OW_API_KEY")}
    os.environ["__OW_NAMESPACE"] = "changed by the action"
    return out
`
	if st, body := h.init(code, false, nil); st != 200 {
		t.Fatalf("init: %d %v", st, body)
	}
	h.collect()
	runs := []struct {
		msg  map[string]any
		want map[string]any
	}{
		{map[string]any{"value": map[string]any{}, "namespace": "guest", "activation_id": "a1", "api_key": "k1"},
			map[string]any{"__OW_ACTIVATION_ID": "a1", "__OW_NAMESPACE": "guest", "__OW_API_KEY": "k1"}},
		{map[string]any{"value": map[string]any{}, "namespace": "guest", "activation_id": "a2"},
			map[string]any{"__OW_ACTIVATION_ID": "a2", "__OW_NAMESPACE": "guest", "__OW_API_KEY": nil}},
	}
	for i, r := range runs {
		st, res := h.post("/run", r.msg)
		if st != 200 {
			t.Fatalf("run %d: %d %v", i+1, st, res)
		}
		for k, v := range r.want {
			if res[k] != v {
				t.Errorf("run %d: %s = %v, want %v", i+1, k, res[k], v)
			}
		}
		h.collect()
	}
}
