package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// initSkeleton posts code to /init and checks the plain-text OK.
func (h *harness) initSkeleton(code string, binary bool, env map[string]string) {
	h.t.Helper()
	st, raw, ctype := h.postRaw("/init", map[string]any{"value": map[string]any{
		"name": "test", "main": "main", "binary": binary, "code": code, "env": env,
	}})
	if st != 200 || string(raw) != "OK" || !strings.HasPrefix(ctype, "text/plain") {
		h.t.Fatalf("init: %d %q (%s)", st, raw, ctype)
	}
	h.collect()
}

// A dockerskeleton action: logs, then the result as the last line, built of
// its argument, its stdin and the run's environment.
const skeletonScript = `#!/bin/bash
echo "log line one"
echo "to stderr" >&2
echo "log line two"
stdin=$(cat)
echo "{\"arg\": $1, \"stdin\": $stdin, \"activation\": \"$__OW_ACTIVATION_ID\", \"apihost\": \"$__OW_API_HOST\", \"initvar\": \"$INIT_VAR\", \"pid\": $$, \"pwd\": \"$(pwd)\"}"
`

func TestSkeletonScript(t *testing.T) {
	h := newHarness(t, LauncherSkeleton, "__OW_API_HOST=http://api.test")
	h.initSkeleton(skeletonScript, false, map[string]string{"INIT_VAR": "from-init"})
	pids := map[float64]bool{}
	for i := 1; i <= 2; i++ {
		id := fmt.Sprintf("act%d", i)
		st, res := h.run(map[string]any{"n": i}, id)
		if st != 200 {
			t.Fatalf("run %d: %d %v", i, st, res)
		}
		arg, _ := res["arg"].(map[string]any)
		stdin, _ := res["stdin"].(map[string]any)
		if arg["n"] != float64(i) || stdin["n"] != float64(i) || res["activation"] != id || res["apihost"] != "http://api.test" || res["initvar"] != "from-init" || !strings.HasSuffix(fmt.Sprint(res["pwd"]), "/action") {
			t.Errorf("run %d: %v", i, res)
		}
		pids[res["pid"].(float64)] = true
		logs := h.collect()
		if len(logs) != 3 || !hasLine(logs, "stdout", "log line one") || !hasLine(logs, "stdout", "log line two") || !hasLine(logs, "stderr", "to stderr") {
			t.Errorf("run %d logs: %q", i, logs)
		}
	}
	if len(pids) != 2 {
		t.Errorf("runs shared a process: pids %v", pids)
	}
	if st, raw, _ := h.postRaw("/init", map[string]any{"value": map[string]any{"code": skeletonScript}}); st != 403 || !strings.Contains(string(raw), msgReinit) {
		t.Errorf("re-init: %d %s", st, raw)
	}
	h.collect()
}

func TestSkeletonZip(t *testing.T) {
	h := newHarness(t, LauncherSkeleton)
	code := zipBase64(t, map[string]zipFile{
		"exec":           {body: "#!/bin/sh\necho \"using $(cat lib/data.txt)\"\necho '[\"an\", \"array\"]'\n", mode: 0o755},
		"lib/data.txt":   {body: "packaged data"},
		"unused/extra.x": {body: "x"},
	})
	h.initSkeleton(code, true, nil)
	st, raw, _ := h.postRaw("/run", map[string]any{"value": map[string]any{}})
	if st != 200 || strings.TrimSpace(string(raw)) != `["an", "array"]` {
		t.Errorf("run: %d %s", st, raw)
	}
	if logs := h.collect(); len(logs) != 1 || !hasLine(logs, "stdout", "using packaged data") {
		t.Errorf("logs: %q", logs)
	}

	for name, files := range map[string]map[string]zipFile{
		"no exec":           {"run.sh": {body: "#!/bin/sh\necho '{}'\n", mode: 0o755}},
		"exec not runnable": {"exec": {body: "#!/bin/sh\necho '{}'\n", mode: 0o644}},
	} {
		h := newHarness(t, LauncherSkeleton)
		st, body := h.init(zipBase64(t, files), true, nil)
		if st != 502 || body["error"] != msgNoBinary {
			t.Errorf("%s: %d %v", name, st, body)
		}
		h.collect()
	}
}

func TestSkeletonBadOutput(t *testing.T) {
	h := newHarness(t, LauncherSkeleton)
	h.initSkeleton(`#!/bin/sh
case "$1" in
  *silent*) ;;
  *number*) echo "a log"; echo 42 ;;
  *trailing*) echo '{"ok": 1}'; echo "then a log" ;;
  *) echo '{"ok": 1}' ;;
esac
`, false, nil)
	for _, c := range []struct{ kind, logged string }{{"silent", ""}, {"number", "42"}, {"trailing", "then a log"}} {
		st, res := h.run(map[string]any{"kind": c.kind}, "a")
		if st != 502 || res["error"] != msgNotDictOrArr {
			t.Errorf("%s: %d %v", c.kind, st, res)
		}
		// As actionproxy.py, the line that was not a result is logged.
		if logs := h.collect(); c.logged != "" && !hasLine(logs, "stdout", c.logged) {
			t.Errorf("%s: logs %q lack %q", c.kind, logs, c.logged)
		}
	}
	if st, res := h.run(map[string]any{}, "b"); st != 200 || res["ok"] != float64(1) {
		t.Errorf("good run: %d %v", st, res)
	}
	h.collect()
	if st, res := h.post("/run", map[string]any{"value": []int{1}}); st != 404 || res["error"] != msgNotDictArg {
		t.Errorf("array parameters: %d %v", st, res)
	}
	h.collect()
}

func TestSkeletonStub(t *testing.T) {
	h := newHarness(t, LauncherSkeleton)
	if st, res := h.run(map[string]any{}, "a"); st != 200 || res["error"] != msgStub {
		t.Errorf("run before init: %d %v", st, res)
	}
	h.collect()
	// An /init without code (a --docker action) keeps the stub.
	h.initSkeleton("", false, nil)
	if st, res := h.run(map[string]any{}, "b"); st != 200 || res["error"] != msgStub {
		t.Errorf("run after an init without code: %d %v", st, res)
	}
	h.collect()
}

// A caller that gives up ends the run's processes, and the next run works.
func TestSkeletonCancelledRun(t *testing.T) {
	h := newHarness(t, LauncherSkeleton)
	h.initSkeleton("#!/bin/bash\ncase \"$1\" in *slow*) sleep 30 & wait ;; esac\necho '{\"fast\": true}'\n", false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	body, _ := json.Marshal(map[string]any{"value": map[string]any{"slow": true}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/run", strings.NewReader(string(body)))
	start := time.Now()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("slow run answered %d", resp.StatusCode)
	}
	h.collect()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the cancelled run took %v to end", d)
	}
	if st, res := h.run(map[string]any{}, "b"); st != 200 || res["fast"] != true {
		t.Errorf("run after a cancelled one: %d %v", st, res)
	}
	h.collect()
}
