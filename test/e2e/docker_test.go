package e2e

import (
	"archive/zip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container/docker"
	"github.com/eddy-faas/eddy/internal/images"
	"github.com/eddy-faas/eddy/internal/whisk"
	"github.com/eddy-faas/eddy/test/fixtures"
)

// TestDockerMemoryLimit: an action that allocates past its memory limit is
// OOM-killed by the kernel, and its record says so.
func TestDockerMemoryLimit(t *testing.T) {
	dockerOnly(t)
	e := startEddy(t, "docker", "")
	e.createAction("hog", "python:3.11", "def main(args):\n    hog = b'x' * (400 << 20)\n    return {'len': len(hog)}\n", map[string]any{"memory": 128})
	e.createAction("fine", "python:3.11", "def main(args):\n    data = b'x' * (20 << 20)\n    return {'len': len(data)}\n", map[string]any{"memory": 128})
	code, _, out := e.call("POST", "/api/v1/namespaces/_/actions/hog?blocking=true", map[string]any{})
	if code != 502 {
		t.Fatalf("%d %s", code, out)
	}
	var rec whisk.Activation
	_ = json.Unmarshal(out, &rec)
	if rec.Response.Status != "action developer error" || string(rec.Response.Result) != `{"error":"`+whisk.MsgOOM+`"}` {
		t.Fatalf("response = %+v %s", rec.Response, rec.Response.Result)
	}
	// Within the limit is fine.
	out = e.mustCall(200, "POST", "/api/v1/namespaces/_/actions/fine?blocking=true&result=true", map[string]any{})
	if !strings.Contains(string(out), `"len":20971520`) {
		t.Fatalf("fine: %s", out)
	}
}

// TestDockerOrphansRemovedAfterKill: containers of an invoker killed with
// SIGKILL are removed when it starts again.
func TestDockerOrphansRemovedAfterKill(t *testing.T) {
	dockerOnly(t)
	dir := t.TempDir()
	e := startEddy(t, "docker", dir)
	e.createAction("orphan", "python:3.11", identityPy, nil)
	e.mustCall(200, "POST", "/api/v1/namespaces/_/actions/orphan?blocking=true&result=true", map[string]any{})
	before := e.containers()
	if len(before) == 0 {
		t.Fatal("no container after an invocation")
	}
	if err := e.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-e.done
	if left := e.containers(); len(left) != len(before) {
		t.Fatalf("after SIGKILL the containers %v should still be there (they are the orphans), found %v", before, left)
	}
	e2 := startEddy(t, "docker", dir)
	for _, id := range e2.containers() {
		for _, old := range before {
			if id == old {
				t.Fatalf("orphan %s survived the restart", old)
			}
		}
	}
	e2.mustCall(200, "POST", "/api/v1/namespaces/_/actions/orphan?blocking=true&result=true", map[string]any{})
}

// TestBlackboxImage: an image that behaves as OpenWhisk's actionloop images
// do (test/fixtures, no sentinels after a successful /init) runs unchanged
// as a blackbox action, with its logs on cold and warm calls and its 1 s
// time limit honoured; an image that cannot be pulled fails with
// OpenWhisk's message.
func TestBlackboxImage(t *testing.T) {
	dockerOnly(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli, err := docker.Dial(ctx, "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = fixtures.Build(ctx, cli)
	cli.Close()
	if err != nil {
		t.Fatal(err)
	}
	e := startEddy(t, "docker", "")
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/bb", map[string]any{
		"exec": map[string]any{"kind": "blackbox", "image": fixtures.ActionloopImage, "code": "any"}, "limits": map[string]any{"timeout": 1000}})
	for i, want := range []int{3, 2} { // cold: the start-up line too
		code, hdr, out := e.call("POST", "/api/v1/namespaces/_/actions/bb?blocking=true", map[string]any{"name": "x"})
		if code != 200 {
			t.Fatalf("%d %s", code, out)
		}
		var rec whisk.Activation
		_ = json.Unmarshal(out, &rec)
		id := hdr.Get("x-openwhisk-activation-id")
		if !strings.Contains(string(rec.Response.Result), `"activation":"`+id+`"`) {
			t.Fatalf("result = %s", rec.Response.Result)
		}
		if logs := strings.Join(rec.Logs, "\n"); len(rec.Logs) != want || !strings.Contains(logs, "stdout: hello x") || !strings.Contains(logs, "stderr: to stderr") {
			t.Fatalf("call %d: logs = %q", i, rec.Logs)
		}
	}
	code, _, out := e.call("POST", "/api/v1/namespaces/_/actions/bb?blocking=true", map[string]any{"sleep": 5000})
	var rec whisk.Activation
	_ = json.Unmarshal(out, &rec)
	if code != 502 || string(rec.Response.Result) != `{"error":"`+whisk.MsgTimeLimit(1000, false)+`"}` || !strings.Contains(strings.Join(rec.Logs, "\n"), "stdout: sleeping") {
		t.Fatalf("timeout: %d %s", code, out)
	}

	// A registry that refuses (loopback port 9): the pull fails at once.
	const missing = "127.0.0.1:9/eddy-e2e/missing:1"
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/nope", map[string]any{"exec": map[string]any{"kind": "blackbox", "image": missing}})
	code, _, out = e.call("POST", "/api/v1/namespaces/_/actions/nope?blocking=true", map[string]any{})
	_ = json.Unmarshal(out, &rec)
	if code != 502 || rec.Response.Status != "action developer error" || string(rec.Response.Result) != `{"error":"`+docker.MsgPullFailed(missing)+`"}` {
		t.Fatalf("%d %s", code, out)
	}
	// An image Docker cannot make a container of fails at once too.
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/nocmd", map[string]any{"exec": map[string]any{"kind": "blackbox", "image": fixtures.NoCommandImage}})
	code, _, out = e.call("POST", "/api/v1/namespaces/_/actions/nocmd?blocking=true", map[string]any{})
	_ = json.Unmarshal(out, &rec)
	if code != 502 || rec.Response.Status != "action developer error" || !strings.Contains(string(rec.Response.Result), "No command specified") {
		t.Fatalf("no command: %d %s", code, out)
	}
}

// TestNativeZipWithCLI: `eddy action create x f.zip --native` sends what
// `wsk ... --native` sends (blackbox, image openwhisk/dockerskeleton, the zip
// in base64); with that image present locally (make runtimes tags Eddy's
// skeleton image so) the action runs.
func TestNativeZipWithCLI(t *testing.T) {
	dockerOnly(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli, err := docker.Dial(ctx, "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := docker.MissingImages(ctx, cli, []string{images.DockerskeletonImage})
	cli.Close()
	if err != nil || len(missing) > 0 {
		t.Skipf("%s is not present (make runtimes tags it): %v", images.DockerskeletonImage, err)
	}
	e := startEddy(t, "docker", "")
	dir := t.TempDir()
	zipPath := filepath.Join(dir, "action.zip")
	writeZip(t, zipPath, map[string]string{"exec": "#!/bin/bash\necho \"log line from exec\"\necho '{\"args\": '\"$1\"'}'\n"})
	props := filepath.Join(dir, "wskprops")
	if _, se, code := e.runCLI(ctx, props, "property", "set", "--apihost", e.URL, "--auth", guestAuth); code != 0 {
		t.Fatal(se)
	}
	if so, se, code := e.runCLI(ctx, props, "action", "create", "zipped", zipPath, "--native"); code != 0 {
		t.Fatalf("create: %s %s", so, se)
	}
	so, se, code := e.runCLI(ctx, props, "action", "invoke", "zipped", "-p", "name", "Ada", "--result")
	if code != 0 || !strings.Contains(so, `"name": "Ada"`) {
		t.Fatalf("invoke: exit %d\n%s\n%s", code, so, se)
	}

	// As in OpenWhisk's dockerskeleton: exec is /action/exec, and the tools
	// its image has are there (jq, curl, zip, perl, python as python).
	tools := "#!/bin/bash\nfor t in python python3 jq curl zip unzip perl git wget openssl; do command -v $t >/dev/null || echo \"missing $t\"; done\n" +
		"echo \"$1\" | jq -c --arg exe \"$0\" '{name: .name, exe: $exe}'\n"
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/tools", map[string]any{"exec": map[string]any{"kind": "blackbox", "image": images.DockerskeletonImage, "code": tools}})
	code, _, out := e.call("POST", "/api/v1/namespaces/_/actions/tools?blocking=true", map[string]any{"name": "Ada"})
	var rec whisk.Activation
	_ = json.Unmarshal(out, &rec)
	var got map[string]string
	_ = json.Unmarshal(rec.Response.Result, &got)
	if code != 200 || got["exe"] != "/action/exec" || got["name"] != "Ada" || len(got) != 2 ||
		strings.Contains(strings.Join(rec.Logs, "\n"), "missing") {
		t.Fatalf("tools: %d %s", code, out)
	}
	py := "#!/usr/bin/env python\nimport json, sys\nprint(json.dumps({'twice': 2 * json.loads(sys.argv[1])['n']}))\n"
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/py", map[string]any{"exec": map[string]any{"kind": "blackbox", "image": images.DockerskeletonImage, "code": py}})
	if out := e.mustCall(200, "POST", "/api/v1/namespaces/_/actions/py?blocking=true&result=true", map[string]any{"n": 21}); string(out) != `{"twice":42}` {
		t.Fatalf("python exec: %s", out)
	}
}

func writeZip(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, body := range files {
		hdr := &zip.FileHeader{Name: name, Method: zip.Deflate}
		hdr.SetMode(0o755)
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}
