package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCLISession is the README's tour with the eddy CLI.
func TestCLISession(t *testing.T) {
	e := startEddy(t, "process", "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	props := filepath.Join(dir, "wskprops")
	src := filepath.Join(dir, "hello.py")
	if err := os.WriteFile(src, []byte(helloPy), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(wantCode int, args ...string) string {
		t.Helper()
		so, se, code := e.runCLI(ctx, props, args...)
		if code != wantCode {
			t.Fatalf("eddy %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, so, se)
		}
		return so + se
	}
	run(0, "property", "set", "--apihost", e.URL, "--auth", guestAuth)
	if out := run(0, "action", "create", "hello", src); !strings.Contains(out, "ok: created action hello") {
		t.Fatalf("create: %s", out)
	}
	if out := run(0, "action", "invoke", "hello", "-p", "name", "Ada", "--result"); !strings.Contains(out, `"greeting": "Hello Ada"`) {
		t.Fatalf("invoke --result: %s", out)
	}
	out := run(0, "action", "invoke", "hello", "-p", "name", "Bob")
	m := regexp.MustCompile(`ok: invoked /_/hello with id ([0-9a-f]{32})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("invoke: %s", out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		so, _, code := e.runCLI(ctx, props, "activation", "get", m[1])
		if code == 0 && strings.Contains(so, "Hello Bob") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("activation get %s never showed the result: %s", m[1], so)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := run(0, "activation", "list"); !strings.Contains(out, m[1]) {
		t.Fatalf("activation list lacks %s: %s", m[1], out)
	}
	if out := run(0, "activation", "logs", m[1]); !strings.Contains(out, "hello on stdout Bob") {
		t.Fatalf("activation logs: %s", out)
	}
	if out := run(0, "action", "list"); !strings.Contains(out, "/guest/hello") {
		t.Fatalf("action list: %s", out)
	}
	if out := run(148, "action", "get", "nope"); !strings.Contains(out, "The requested resource does not exist.") {
		t.Fatalf("get missing: %s", out)
	}
}
