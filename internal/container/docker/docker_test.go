package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	eddyc "github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// helperImage is built once per test run from testdata/helper.
const helperImage = "eddy-test/docker-helper:latest"

var (
	helperOnce sync.Once
	helperErr  error
)

// dockerOrSkip skips the test when no Docker daemon answers, unless
// EDDY_REQUIRE_DOCKER=1, when it fails instead.
func dockerOrSkip(t *testing.T) {
	t.Helper()
	cli, err := Dial(context.Background(), "", 3*time.Second)
	if err != nil {
		if os.Getenv("EDDY_REQUIRE_DOCKER") == "1" {
			t.Fatalf("EDDY_REQUIRE_DOCKER=1 but Docker is unreachable: %v", err)
		}
		t.Skipf("Docker is unreachable (%v); run scripts/docker-up, or set EDDY_REQUIRE_DOCKER=1 to make this a failure", err)
	}
	defer cli.Close()
	helperOnce.Do(func() { helperErr = buildHelper(cli) })
	if helperErr != nil {
		t.Fatalf("building the helper image: %v", helperErr)
	}
}

// buildHelper compiles testdata/helper statically and builds a FROM
// scratch image of it through the Engine API.
func buildHelper(cli *client.Client) error {
	dir, err := os.MkdirTemp("", "eddy-docker-test-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "helper")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/helper")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	dockerfile := "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/helper\"]\n"
	files := []struct {
		name string
		mode int64
		body []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"rootfs/helper", 0o755, exe}}
	if err := tw.WriteHeader(&tar.Header{Name: "rootfs/tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}); err != nil {
		return err
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := cli.ImageBuild(ctx, &ctxTar, build.ImageBuildOptions{Tags: []string{helperImage}, Remove: true, ForceRemove: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return ReadStream(resp.Body, nil)
}

func newBackend(t *testing.T, invoker string) *Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := New(ctx, Config{InvokerID: invoker})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func randomID(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "test" + hex.EncodeToString(b[:])
}

func create(t *testing.T, b *Backend, spec eddyc.Spec) *Container {
	t.Helper()
	if spec.Image == "" {
		spec.Image = helperImage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c.(*Container)
}

// post sends a runtime-protocol request and decodes the JSON answer.
func post(t *testing.T, addr, path string, body any) map[string]any {
	t.Helper()
	buf, _ := json.Marshal(body)
	hc := http.Client{Timeout: 60 * time.Second}
	resp, err := hc.Post("http://"+addr+path, "application/json", bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: status %d, decode: %v", path, resp.StatusCode, err)
	}
	return out
}

// untilSentinels reads log lines until the sentinel has been seen on both
// streams and returns the lines before them, per stream.
func untilSentinels(t *testing.T, logs <-chan eddyc.LogLine) map[string][]eddyc.LogLine {
	t.Helper()
	got := map[string][]eddyc.LogLine{}
	seen := map[string]bool{}
	timeout := time.After(60 * time.Second)
	for !seen[eddyc.Stdout] || !seen[eddyc.Stderr] {
		select {
		case l, ok := <-logs:
			if !ok {
				t.Fatalf("Logs closed before both sentinels; got %d stdout, %d stderr lines", len(got[eddyc.Stdout]), len(got[eddyc.Stderr]))
			}
			if l.Text == eddyc.Sentinel {
				seen[l.Stream] = true
				continue
			}
			got[l.Stream] = append(got[l.Stream], l)
		case <-timeout:
			t.Fatal("no sentinel on both streams within 60 s")
		}
	}
	return got
}

func TestLifecycle(t *testing.T) {
	dockerOrSkip(t)
	b := newBackend(t, randomID(t))
	before := time.Now().Add(-time.Second)
	c := create(t, b, eddyc.Spec{
		Name:     "eddy_inv0_guest_hello@world_1",
		Kind:     "blackbox",
		MemoryMB: 128,
		Env:      map[string]string{"GREETING": "hi there"},
		Labels:   map[string]string{"eddy.action": "hello"},
	})
	if !strings.HasSuffix(c.Addr(), ":8080") {
		t.Errorf("Addr = %q, want ip:8080", c.Addr())
	}
	if c.Name() != "eddy_inv0_guest_hello_world_1" {
		t.Errorf("Name = %q, want the sanitised spec name", c.Name())
	}

	post(t, c.Addr(), "/init", map[string]any{"value": map[string]any{}})
	untilSentinels(t, c.Logs())
	res := post(t, c.Addr(), "/run", map[string]any{"value": map[string]any{"mode": "echo"}})
	if res["env"] != "hi there" {
		t.Errorf("result = %v, want the env var from the spec", res)
	}
	lines := untilSentinels(t, c.Logs())
	if len(lines[eddyc.Stdout]) != 1 || lines[eddyc.Stdout][0].Text != "hello stdout hi there" {
		t.Errorf("stdout = %+v", lines[eddyc.Stdout])
	}
	if len(lines[eddyc.Stderr]) != 1 || lines[eddyc.Stderr][0].Text != "hello stderr" {
		t.Errorf("stderr = %+v", lines[eddyc.Stderr])
	}
	for _, l := range append(lines[eddyc.Stdout], lines[eddyc.Stderr]...) {
		if l.Time.Before(before) || l.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("line %q has time %v, want Docker's timestamp of now", l.Text, l.Time)
		}
	}

	ctx := context.Background()
	info, err := b.Client().ContainerInspect(ctx, c.ID())
	if err != nil {
		t.Fatal(err)
	}
	hc := info.HostConfig
	if hc.Memory != 128<<20 || hc.MemorySwap != 128<<20 {
		t.Errorf("memory = %d, swap = %d, want both %d", hc.Memory, hc.MemorySwap, 128<<20)
	}
	if hc.CPUShares != 512 {
		t.Errorf("cpu shares = %d, want 512", hc.CPUShares)
	}
	if hc.PidsLimit == nil || *hc.PidsLimit != PidsLimit {
		t.Errorf("pids limit = %v, want %d", hc.PidsLimit, PidsLimit)
	}
	if len(hc.Ulimits) != 1 || hc.Ulimits[0].Name != "nofile" || hc.Ulimits[0].Soft != 1024 || hc.Ulimits[0].Hard != 1024 {
		t.Errorf("ulimits = %v, want nofile 1024:1024", hc.Ulimits)
	}
	if info.Config.Labels[LabelInvoker] != b.cfg.InvokerID || info.Config.Labels["eddy.action"] != "hello" {
		t.Errorf("labels = %v", info.Config.Labels)
	}
	if _, ok := info.NetworkSettings.Networks[DefaultNetwork]; !ok || len(info.NetworkSettings.Networks) != 1 {
		t.Errorf("networks = %v, want only %s", info.NetworkSettings.Networks, DefaultNetwork)
	}

	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after Remove")
	}
	if err := c.Remove(ctx); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if _, err := b.Client().ContainerInspect(ctx, c.ID()); !cerrdefs.IsNotFound(err) {
		t.Errorf("inspect after Remove: %v, want not found", err)
	}
	drain(t, c.Logs())
}

// drain waits for Logs to close.
func drain(t *testing.T, logs <-chan eddyc.LogLine) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case _, ok := <-logs:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("Logs not closed")
		}
	}
}

func TestOutOfMemory(t *testing.T) {
	dockerOrSkip(t)
	b := newBackend(t, randomID(t))
	c := create(t, b, eddyc.Spec{Name: "oom", MemoryMB: 64})
	post(t, c.Addr(), "/init", map[string]any{"value": map[string]any{}})
	go func() {
		// The connection dies with the container; the answer is not used.
		buf, _ := json.Marshal(map[string]any{"value": map[string]any{"mode": "alloc", "mb": 256}})
		hc := http.Client{Timeout: 60 * time.Second}
		if resp, err := hc.Post("http://"+c.Addr()+"/run", "application/json", bytes.NewReader(buf)); err == nil {
			resp.Body.Close()
		}
	}()
	go func() {
		for range c.Logs() {
		}
	}()
	select {
	case <-c.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the container allocating 256 MB with a 64 MB limit did not die")
	}
	if ex := c.Exit(); !ex.OOMKilled || ex.Code != 137 {
		t.Errorf("Exit = %+v, want OOMKilled with code 137", ex)
	}
}

func TestOrphansRemovedByNew(t *testing.T) {
	dockerOrSkip(t)
	id := randomID(t)
	ctx := context.Background()
	// An earlier run that died without Close (kill -9): its containers stay.
	old, err := New(ctx, Config{InvokerID: id})
	if err != nil {
		t.Fatal(err)
	}
	defer old.cli.Close()
	c1 := create(t, old, eddyc.Spec{Name: "orphan_1"})
	c2 := create(t, old, eddyc.Spec{Name: "orphan_2"})
	// A container of another invoker must survive.
	other := newBackend(t, randomID(t))
	keep := create(t, other, eddyc.Spec{Name: "keep"})

	b := newBackend(t, id)
	for _, c := range []*Container{c1, c2} {
		if _, err := b.Client().ContainerInspect(ctx, c.ID()); !cerrdefs.IsNotFound(err) {
			t.Errorf("orphan %s still there after New (inspect: %v)", c.Name(), err)
		}
	}
	if _, err := b.Client().ContainerInspect(ctx, keep.ID()); err != nil {
		t.Errorf("another invoker's container was touched: %v", err)
	}
}

func TestCloseRemovesAll(t *testing.T) {
	dockerOrSkip(t)
	ctx := context.Background()
	id := randomID(t)
	b, err := New(ctx, Config{InvokerID: id})
	if err != nil {
		t.Fatal(err)
	}
	c1 := create(t, b, eddyc.Spec{Name: "a"})
	c2 := create(t, b, eddyc.Spec{Name: "b"})
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Container{c1, c2} {
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Errorf("%s: Done not closed after Close", c.Name())
		}
	}
	cli, err := Dial(ctx, "", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelInvoker+"="+id))})
	if err != nil || len(list) != 0 {
		t.Errorf("after Close: %d containers left (%v)", len(list), err)
	}
	if _, err := b.Create(ctx, eddyc.Spec{Image: helperImage}); err == nil {
		t.Error("Create after Close succeeded")
	}
}

func TestPullFailure(t *testing.T) {
	dockerOrSkip(t)
	b := newBackend(t, randomID(t))
	// A registry on a closed loopback port: the pull fails at once, and
	// nothing leaves this machine.
	ref := "127.0.0.1:9/eddy-test/missing:latest"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	_, err := b.Create(ctx, eddyc.Spec{Name: "pull", Image: ref})
	if err == nil {
		t.Fatal("Create of a missing image succeeded")
	}
	if whisk.KindOf(err) != whisk.Invalid {
		t.Errorf("kind = %v, want invalid (%v)", whisk.KindOf(err), err)
	}
	if got, want := whisk.UserMessage(err), "Failed to pull container image '"+ref+"'."; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the failed pull took %v", d)
	}
}

func TestExitBeforeListening(t *testing.T) {
	dockerOrSkip(t)
	b := newBackend(t, randomID(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := b.Create(ctx, eddyc.Spec{Name: "crash", Image: helperImage, Env: map[string]string{"HELPER_EXIT": "3"}})
	if err == nil {
		t.Fatal("Create of a container that exits succeeded")
	}
	if !strings.Contains(err.Error(), "code 3") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("error %q should give the exit code and the log tail", err)
	}
	if whisk.KindOf(err) != whisk.Invalid {
		t.Errorf("kind = %v, want invalid for an image without launcher", whisk.KindOf(err))
	}
	assertNone(t, b)
}

func TestCreateCancelled(t *testing.T) {
	dockerOrSkip(t)
	b := newBackend(t, randomID(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := b.Create(ctx, eddyc.Spec{Name: "slow", Image: helperImage, Env: map[string]string{"HELPER_DELAY": "1m"}})
	if err == nil {
		t.Fatal("Create returned a container that never listened")
	}
	assertNone(t, b)
}

// assertNone checks that the backend's invoker has no container left.
func assertNone(t *testing.T, b *Backend) {
	t.Helper()
	list, err := b.Client().ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelInvoker+"="+b.cfg.InvokerID))})
	if err != nil || len(list) != 0 {
		t.Errorf("%d containers left (%v)", len(list), err)
	}
}

func TestChattyLogsComplete(t *testing.T) {
	dockerOrSkip(t)
	b := newBackend(t, randomID(t))
	c := create(t, b, eddyc.Spec{Name: "chatty", MemoryMB: 256})
	post(t, c.Addr(), "/init", map[string]any{"value": map[string]any{}})
	untilSentinels(t, c.Logs())
	const n, long = 20000, 100000 // the long line is split by Docker into 16 KiB pieces
	done := make(chan map[string][]eddyc.LogLine)
	go func() { done <- untilSentinels(t, c.Logs()) }()
	post(t, c.Addr(), "/run", map[string]any{"value": map[string]any{"mode": "chatty", "lines": n, "long": long}})
	got := <-done
	if len(got[eddyc.Stdout]) != n+1 || len(got[eddyc.Stderr]) != n {
		t.Fatalf("got %d stdout and %d stderr lines, want %d and %d", len(got[eddyc.Stdout]), len(got[eddyc.Stderr]), n+1, n)
	}
	for i := range n {
		if o, e := got[eddyc.Stdout][i].Text, got[eddyc.Stderr][i].Text; o != fmt.Sprintf("out %d", i) || e != fmt.Sprintf("err %d", i) {
			t.Fatalf("line %d: %q / %q", i, o, e)
		}
	}
	if l := got[eddyc.Stdout][n].Text; l != strings.Repeat("x", long) {
		t.Errorf("the long line came back with %d bytes, want %d", len(l), long)
	}
}

func TestLineWriter(t *testing.T) {
	var got []eddyc.LogLine
	w := &lineWriter{stream: eddyc.Stdout, stamped: true, emit: func(l eddyc.LogLine) error { got = append(got, l); return nil }}
	frames := []string{
		"2024-01-02T03:04:05.000000001Z one\n",
		"2024-01-02T03:04:06.000000000Z \n",
		"2024-01-02T03:04:07.000000000Z par",
		"2024-01-02T03:04:08.000000000Z tial\n",
		"2024-01-02T03:04:09.000000000Z no newline at the end",
	}
	for _, f := range frames {
		if _, err := io.WriteString(w, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	want := []struct{ text, at string }{
		{"one", "2024-01-02T03:04:05.000000001Z"},
		{"", "2024-01-02T03:04:06Z"},
		{"partial", "2024-01-02T03:04:07Z"},
		{"no newline at the end", "2024-01-02T03:04:09Z"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines: %+v", len(got), got)
	}
	for i, w := range want {
		if got[i].Text != w.text || got[i].Time.UTC().Format(time.RFC3339Nano) != w.at {
			t.Errorf("line %d = %q at %v, want %q at %s", i, got[i].Text, got[i].Time, w.text, w.at)
		}
	}
}

func TestCPUShares(t *testing.T) {
	for mem, want := range map[int64]int64{128: 512, 256: 1024, 512: 2048, 0: 2} {
		if got := CPUShares(mem); got != want {
			t.Errorf("CPUShares(%d) = %d, want %d", mem, got, want)
		}
	}
}

func TestContainerName(t *testing.T) {
	b := &Backend{cfg: Config{InvokerID: "inv/0"}}
	for in, want := range map[string]string{
		"eddy_inv0_guest_hello_1":  "eddy_inv0_guest_hello_1",
		"eddy_inv0_me@x.com_a b_2": "eddy_inv0_me_x.com_a_b_2",
		"_x":                       "eddy_x",
		".x":                       "eddy_x",
		"a":                        "eddy_a",
		"":                         "eddy_inv_0_1",
	} {
		if got := b.containerName(eddyc.Spec{Name: in}); got != want {
			t.Errorf("containerName(%q) = %q, want %q", in, got, want)
		}
	}
}
