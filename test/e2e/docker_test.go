package e2e

import (
	"archive/zip"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container/docker"
	"github.com/eddy-faas/eddy/internal/images"
	"github.com/eddy-faas/eddy/internal/whisk"
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

// TestBlackboxImage: an image that serves the runtime protocol, written
// without any of Eddy's code and built here FROM scratch, runs unchanged as
// a blackbox action; an image that cannot be pulled fails with OpenWhisk's
// message.
func TestBlackboxImage(t *testing.T) {
	dockerOnly(t)
	const ref = "eddy-e2e/blackbox:1"
	buildBlackbox(t, ref)
	e := startEddy(t, "docker", "")
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/bb", map[string]any{"exec": map[string]any{"kind": "blackbox", "image": ref}})
	code, hdr, out := e.call("POST", "/api/v1/namespaces/_/actions/bb?blocking=true", map[string]any{"x": 1})
	if code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	var rec whisk.Activation
	_ = json.Unmarshal(out, &rec)
	id := hdr.Get("x-openwhisk-activation-id")
	if string(rec.Response.Result) != `{"activation":"`+id+`","echo":{"x":1}}` {
		t.Fatalf("result = %s", rec.Response.Result)
	}
	if !strings.Contains(strings.Join(rec.Logs, "\n"), "stdout: blackbox ran "+id) {
		t.Fatalf("logs = %q", rec.Logs)
	}

	// A registry that refuses (loopback port 9): the pull fails at once.
	const missing = "127.0.0.1:9/eddy-e2e/missing:1"
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/nope", map[string]any{"exec": map[string]any{"kind": "blackbox", "image": missing}})
	code, _, out = e.call("POST", "/api/v1/namespaces/_/actions/nope?blocking=true", map[string]any{})
	_ = json.Unmarshal(out, &rec)
	if code != 502 || rec.Response.Status != "action developer error" || string(rec.Response.Result) != `{"error":"`+docker.MsgPullFailed(missing)+`"}` {
		t.Fatalf("%d %s", code, out)
	}
}

// buildBlackbox compiles testdata/blackbox statically and builds ref FROM scratch.
func buildBlackbox(t *testing.T, ref string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "blackbox")
	build := exec.Command("go", "build", "-o", bin, "./testdata/blackbox")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli, err := docker.Dial(ctx, "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	files := []images.File{{Name: "rootfs/blackbox", Mode: 0o755, Body: exe}}
	dockerfile := "FROM scratch\nCOPY rootfs/ /\nEXPOSE 8080\nENTRYPOINT [\"/blackbox\"]\n"
	if err := images.BuildContext(ctx, cli, ref, dockerfile, files, nil, false, nil); err != nil {
		t.Fatalf("building %s: %v", ref, err)
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
