package images

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	eddyc "github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/container/docker"
)

// dockerOrSkip skips when no Docker daemon answers, unless
// EDDY_REQUIRE_DOCKER=1, when it fails.
func dockerOrSkip(t *testing.T) *client.Client {
	t.Helper()
	cli, err := docker.Dial(context.Background(), "", 3*time.Second)
	if err != nil {
		if os.Getenv("EDDY_REQUIRE_DOCKER") == "1" {
			t.Fatalf("EDDY_REQUIRE_DOCKER=1 but Docker is unreachable: %v", err)
		}
		t.Skipf("Docker is unreachable (%v); run scripts/docker-up, or set EDDY_REQUIRE_DOCKER=1 to make this a failure", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

var (
	runtimeOnce sync.Once
	runtimeBin  string
	runtimeErr  error
)

// runtimeBinary builds ./cmd/eddy-runtime statically, once per test run.
func runtimeBinary(t *testing.T) string {
	t.Helper()
	runtimeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "eddy-images-test-")
		if err != nil {
			runtimeErr = err
			return
		}
		runtimeBin = filepath.Join(dir, "eddy-runtime")
		cmd := exec.Command("go", "build", "-trimpath", "-o", runtimeBin, "../../cmd/eddy-runtime")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			runtimeErr = err
			runtimeBin = string(out)
		}
	})
	if runtimeErr != nil {
		t.Fatalf("building eddy-runtime: %v\n%s", runtimeErr, runtimeBin)
	}
	return runtimeBin
}

// logWriter sends progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestNativeImage(t *testing.T) {
	cli := dockerOrSkip(t)
	bin := runtimeBinary(t)
	ctx := context.Background()

	var out bytes.Buffer
	start := time.Now()
	if err := Build(ctx, Options{RuntimeBinary: bin, Families: []string{Native}, Force: true, Progress: io.MultiWriter(&out, logWriter{t})}); err != nil {
		t.Fatal(err)
	}
	t.Logf("forced build: %v", time.Since(start))
	if !strings.Contains(out.String(), NativeImage+":latest: built") {
		t.Errorf("progress lacks the built line:\n%s", out.String())
	}
	info, err := cli.ImageInspect(ctx, NativeImage)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Config.Entrypoint; !slices.Equal(got, []string{"/eddy-runtime", "--listen", ":8080"}) {
		t.Errorf("entrypoint = %v", got)
	}
	if !slices.Contains(info.Config.Env, "EDDY_LAUNCHER=native") || info.Config.Labels[LabelBuild] == "" {
		t.Errorf("env = %v, labels = %v", info.Config.Env, info.Config.Labels)
	}

	out.Reset()
	start = time.Now()
	if err := Build(ctx, Options{RuntimeBinary: bin, Families: []string{Native}, Progress: &out}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second || !strings.Contains(out.String(), "up to date") {
		t.Errorf("second build took %v and said:\n%s", d, out.String())
	}

	// The image runs: its runtime server listens on 8080 and answers.
	c := startRuntime(t, eddyc.Spec{Name: "native-image-test", Image: NativeImage, Launcher: "native", MemoryMB: 128})
	resp, err := http.Post("http://"+c.Addr()+"/run", "application/json", strings.NewReader(`{"value":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 0 {
		t.Error("no answer from the runtime in the native image")
	}
}

// TestDebianImages builds every image (debootstrap: minutes the first
// time), checks the cached rebuild takes seconds, runs a Python action in
// the python image and checks the nodejs image's tag against its node.
// Only with EDDY_BUILD_IMAGES=1.
func TestDebianImages(t *testing.T) {
	if os.Getenv("EDDY_BUILD_IMAGES") != "1" {
		t.Skip("set EDDY_BUILD_IMAGES=1 to build the Debian-based runtime images (needs root, debootstrap and Debian's mirror)")
	}
	cli := dockerOrSkip(t)
	bin := runtimeBinary(t)
	ctx := context.Background()

	start := time.Now()
	var out bytes.Buffer
	if err := Build(ctx, Options{RuntimeBinary: bin, Progress: io.MultiWriter(&out, logWriter{t})}); err != nil {
		t.Fatal(err)
	}
	t.Logf("first build: %v", time.Since(start))
	start = time.Now()
	out.Reset()
	if err := Build(ctx, Options{RuntimeBinary: bin, Progress: &out}); err != nil {
		t.Fatal(err)
	}
	t.Logf("cached rebuild: %v\n%s", time.Since(start), out.String())
	if d := time.Since(start); d > 30*time.Second || strings.Contains(out.String(), "built in") {
		t.Errorf("the cached rebuild took %v and said:\n%s", d, out.String())
	}

	// A new runtime binary rebuilds the runtime layer on the cached root
	// file system, in seconds; the original binary then restores the image.
	changed := filepath.Join(t.TempDir(), "eddy-runtime")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(changed, append(data, '\n'), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, rt := range []string{changed, bin} {
		out.Reset()
		start = time.Now()
		if err := Build(ctx, Options{RuntimeBinary: rt, Families: []string{Python}, Progress: &out}); err != nil {
			t.Fatal(err)
		}
		t.Logf("rebuild with another runtime binary: %v\n%s", time.Since(start), out.String())
		if !strings.Contains(out.String(), "rootfs-python:"+DefaultSuite+": up to date") || !strings.Contains(out.String(), PythonRepo+":3.11: built") {
			t.Errorf("a new runtime binary should rebuild only the runtime layer:\n%s", out.String())
		}
	}

	// python: the image runs a Python action through the runtime server.
	py := imageWithLabel(t, cli, PythonRepo)
	c := startRuntime(t, eddyc.Spec{Name: "python-image-test", Image: py, Launcher: "python", MemoryMB: 256})
	code := "import sys\ndef main(args):\n    return {'greeting': 'hi ' + args.get('name', ''), 'version': '%d.%d' % sys.version_info[:2]}\n"
	postJSON(t, c.Addr(), "/init", map[string]any{"value": map[string]any{"name": "t", "main": "main", "code": code, "binary": false}})
	res := postJSON(t, c.Addr(), "/run", map[string]any{"value": map[string]any{"name": "Eddy"}})
	if res["greeting"] != "hi Eddy" || !strings.HasSuffix(py, ":"+res["version"].(string)) {
		t.Errorf("python image %s answered %v", py, res)
	}

	// nodejs: the tag is the major version of the node inside.
	node := imageWithLabel(t, cli, NodejsRepo)
	if got := runIn(t, cli, node, "node", "--version"); !strings.HasPrefix(got, "v"+node[strings.LastIndex(node, ":")+1:]+".") {
		t.Errorf("%s has node %q", node, got)
	}
}

// startRuntime creates a container with the Docker backend, discards its
// logs, and removes it (and the backend) when the test ends.
func startRuntime(t *testing.T, spec eddyc.Spec) eddyc.Container {
	t.Helper()
	ctx := context.Background()
	b, err := docker.New(ctx, docker.Config{InvokerID: "images-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(ctx) })
	c, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range c.Logs() {
		}
	}()
	return c
}

// imageWithLabel finds the image of repo that Build made.
func imageWithLabel(t *testing.T, cli *client.Client, repo string) string {
	t.Helper()
	for _, tag := range []string{"3.11", "3.12", "18", "20", "22"} {
		ref := repo + ":" + tag
		if info, err := cli.ImageInspect(context.Background(), ref); err == nil && info.Config.Labels[LabelBuild] != "" {
			return ref
		}
	}
	t.Fatalf("no image of %s with the %s label", repo, LabelBuild)
	return ""
}

// runIn runs a command in a throwaway container of ref and returns its output.
func runIn(t *testing.T, cli *client.Client, ref string, cmd ...string) string {
	t.Helper()
	ctx := context.Background()
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: ref, Entrypoint: cmd}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	wait, werr := cli.ContainerWait(ctx, c.ID, container.WaitConditionNextExit)
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wait:
	case err := <-werr:
		t.Fatal(err)
	}
	rc, err := cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, _ = stdcopy.StdCopy(&buf, &buf, rc)
	return strings.TrimSpace(buf.String())
}

func postJSON(t *testing.T, addr, path string, body any) map[string]any {
	t.Helper()
	buf, _ := json.Marshal(body)
	resp, err := http.Post("http://"+addr+path, "application/json", bytes.NewReader(buf))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %v %v", path, resp.StatusCode, out, err)
	}
	return out
}

func TestVersions(t *testing.T) {
	for in, want := range map[string]string{
		"3.11.2-1+b1":            "3.11.2",
		"18.20.4+dfsg-1~deb12u2": "18.20.4",
		"1:2.3-4":                "2.3",
		"7":                      "7",
	} {
		if got := upstreamVersion(in); got != want {
			t.Errorf("upstreamVersion(%q) = %q, want %q", in, got, want)
		}
	}
	if major("18.20.4") != "18" || majorMinor("3.11.2") != "3.11" || majorMinor("7") != "7" {
		t.Error("major/majorMinor")
	}
	status := filepath.Join(t.TempDir(), "status")
	os.WriteFile(status, []byte("Package: python3-minimal\nVersion: 3.11.2-1+b1\n\nPackage: python3\nStatus: install ok installed\nVersion: 3.11.2-1+b1\n\n"), 0o644)
	if v, err := packageVersion(status, "python3"); err != nil || v != "3.11.2" {
		t.Errorf("packageVersion = %q, %v", v, err)
	}
	if _, err := packageVersion(status, "nodejs"); err == nil {
		t.Error("packageVersion of a missing package succeeded")
	}
}

func TestMirrorIn(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"a.sources": "Types: deb\n# http://snapshot.debian.org/archive/debian/x\nURIs: http://mirror.example/debian\nSuites: bookworm\n",
		"b.list":    "deb [arch=amd64 signed-by=/k.gpg] http://other.example/debian/ bookworm main\n",
		"c.list":    "deb https://packages.cloud.google.com/apt cloud-sdk main\n",
	} {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	for name, want := range map[string]string{"a.sources": "http://mirror.example/debian", "b.list": "http://other.example/debian", "c.list": ""} {
		if got := mirrorIn(filepath.Join(dir, name)); got != want {
			t.Errorf("mirrorIn(%s) = %q, want %q", name, got, want)
		}
	}
	if m := SystemMirror(); !strings.HasPrefix(m, "http") {
		t.Errorf("SystemMirror = %q", m)
	}
}
