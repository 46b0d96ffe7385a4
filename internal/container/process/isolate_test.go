//go:build linux

package process

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root: the backend runs containers as other uids only when Eddy is root")
	}
}

// probeAction answers each run with what it was asked to find out: the
// run's value is {"read": [paths], "sh": "base64 of a command"}; it answers, per path,
// whether it could read it, and the command's output.
const probeAction = `#!/bin/bash
while read -r line; do
  out="{"
  for p in $(echo "$line" | sed -n 's/.*"read": *\[\([^]]*\)\].*/\1/p' | tr -d '" ' | tr ',' ' '); do
    if cat "$p" >/dev/null 2>&1; then r=true; else r=false; fi
    out="$out\"$p\": $r, "
  done
  cmd=$(echo "$line" | sed -n 's/.*"sh": *"\([^"]*\)".*/\1/p' | base64 -d)
  res=""
  if [ -n "$cmd" ]; then res=$(bash -c "$cmd" 2>&1 | tr '\n' ' '); fi
  echo "$out\"uid\": $(id -u), \"sh\": \"$res\"}" >&3
done
`

// probeValue is a run's value for probeAction: paths to read and a shell
// command in base64 (JSON escapes which sed would not decode).
func probeValue(read []string, sh string) json.RawMessage {
	v, _ := json.Marshal(map[string]any{"read": read, "sh": base64.StdEncoding.EncodeToString([]byte(sh))})
	return v
}

type probe struct {
	c   container.Container
	cl  *container.Client
	dir string
}

func newProbe(t *testing.T, b *Backend, name string, mem int64) *probe {
	t.Helper()
	ctx := context.Background()
	c, err := b.Create(ctx, container.Spec{Name: name, Launcher: "native", MemoryMB: mem,
		Labels: map[string]string{"eddy.namespace": name}})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range c.Logs() {
		}
	}()
	cl := container.NewClient(c.Addr())
	t.Cleanup(cl.Close)
	if resp, err := cl.Init(ctx, container.InitRequest{Code: probeAction}); err != nil || resp.Status != 200 {
		t.Fatalf("init: %v %+v", err, resp)
	}
	return &probe{c: c, cl: cl, dir: c.(*Container).dir}
}

func (p *probe) run(t *testing.T, read []string, sh string) map[string]any {
	t.Helper()
	v := probeValue(read, sh)
	resp, err := p.cl.Run(context.Background(), container.RunRequest{Value: v, ActivationID: "a"})
	if err != nil || resp.Status != 200 {
		t.Fatalf("run: %v %+v", err, resp)
	}
	var out map[string]any
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		t.Fatalf("run answered %s: %v", resp.Body, err)
	}
	return out
}

// TestIsolatedReads: an action reads neither Eddy's private files (a data
// dir like standalone's: 0700, its database 0600), nor another container's
// work dir, nor /etc/shadow; it runs as a uid of its own, not 0, and
// reads what is its own.
func TestIsolatedReads(t *testing.T) {
	needRoot(t)
	dataDir := t.TempDir()
	db := filepath.Join(dataDir, "eddy.db")
	if err := os.WriteFile(db, []byte("keys"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t)
	a := newProbe(t, b, "tenantA", 256)
	secret := filepath.Join(a.dir, "secret")
	if out := a.run(t, nil, "echo s3cret > "+secret+" && cat "+secret); out["sh"] != "s3cret " {
		t.Fatalf("A cannot write its own work dir: %v", out)
	}
	bb := newProbe(t, b, "tenantB", 256)
	paths := []string{db, secret, "/etc/shadow", filepath.Join(bb.dir, "tmp")}
	out := bb.run(t, paths, "ls "+a.dir+" || echo denied")
	for _, p := range paths[:3] {
		if out[p] != false {
			t.Errorf("B read %s: %v", p, out)
		}
	}
	if !strings.Contains(out["sh"].(string), "denied") {
		t.Errorf("B listed A's work dir: %v", out)
	}
	outA := a.run(t, []string{secret}, "")
	uidA, uidB := outA["uid"].(float64), out["uid"].(float64)
	if outA[secret] != true {
		t.Errorf("A cannot read its own file: %v", outA)
	}
	if uidA == 0 || uidB == 0 || uidA == uidB || uint32(uidA) < b.firstUID || uint32(uidB) < b.firstUID {
		t.Errorf("uids A %v, B %v (slot from %d)", uidA, uidB, b.firstUID)
	}
	// Root can still read both: the denials are the uids', not missing files.
	for _, p := range paths[:2] {
		if _, err := os.ReadFile(p); err != nil {
			t.Error(err)
		}
	}
}

// TestIsolatedLimits: the runtime and what it starts have the rlimits
// derived from the container's memory limit.
func TestIsolatedLimits(t *testing.T) {
	needRoot(t)
	b := newBackend(t)
	p := newProbe(t, b, "limits", 300)
	out := p.run(t, nil, "ulimit -u; ulimit -n; ulimit -v")
	want := fmt.Sprintf("%d %d %d ", defaultNProc, defaultNoFile, (300+defaultAddressSpaceHeadroomMB)<<10)
	if out["sh"] != want {
		t.Errorf("limits %q, want %q", out["sh"], want)
	}
}

// TestIsolatedNodejs: node, which reserves much address space, runs under
// the address-space limit (python runs in TestCreateRunRemove).
func TestIsolatedNodejs(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not found")
	}
	b := newBackend(t)
	ctx := context.Background()
	c, err := b.Create(ctx, container.Spec{Name: "js", Launcher: "nodejs", MemoryMB: 128})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range c.Logs() {
		}
	}()
	cl := container.NewClient(c.Addr())
	defer cl.Close()
	code := `function main(a) { const b = Buffer.alloc(64 << 20, 1); return {uid: process.getuid(), n: b.length} }`
	if resp, err := cl.Init(ctx, container.InitRequest{Code: code}); err != nil || resp.Status != 200 {
		t.Fatalf("init: %v %+v", err, resp)
	}
	resp, err := cl.Run(ctx, container.RunRequest{Value: json.RawMessage(`{}`), ActivationID: "a"})
	if err != nil || resp.Status != 200 {
		t.Fatalf("run: %v %+v", err, resp)
	}
	var res struct{ UID, N int }
	_ = json.Unmarshal(resp.Body, &res)
	if res.UID == 0 || res.N != 64<<20 {
		t.Errorf("result %s", resp.Body)
	}
}

// escapees runs escape in p and returns the pids it reports, checking
// they live.
func escapees(t *testing.T, p *probe) []int {
	t.Helper()
	out := p.run(t, nil, escapeSh)
	var pids []int
	for _, f := range strings.Fields(out["sh"].(string)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("escape answered %v", out)
		}
		if !alive(pid) {
			t.Fatalf("escaped process %d is not running", pid)
		}
		pids = append(pids, pid)
	}
	if len(pids) != 2 {
		t.Fatalf("escape answered %v", out)
	}
	return pids
}

// TestSetsidDiesWithContainer: what an action starts in sessions of its
// own dies when its container is removed, and when its runtime dies.
func TestSetsidDiesWithContainer(t *testing.T) {
	needRoot(t)
	b := newBackend(t)
	ctx := context.Background()

	p := newProbe(t, b, "escaper", 256)
	pids := escapees(t, p)
	uid := p.c.(*Container).uid
	if err := p.c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d outlived Remove", pid)
		}
	}
	if live, err := liveUIDs(uid, 1); err != nil || len(live) != 0 {
		t.Errorf("uid %d still runs %v (%v)", uid, live, err)
	}
	// Reaped, too: no zombie of them is left with Eddy as its parent.
	for _, pid := range pids {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil && strings.Contains(string(st), fmt.Sprintf("PPid:\t%d\n", os.Getpid())) {
			t.Errorf("process %d is an unreaped zombie of Eddy's", pid)
		}
	}

	// The runtime server dies (killed from outside): its escapees die too,
	// before Done.
	p = newProbe(t, b, "escaper2", 256)
	pids = escapees(t, p)
	_ = syscall.Kill(p.c.(*Container).Pid(), syscall.SIGKILL)
	<-p.c.Done()
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d outlived its runtime", pid)
		}
	}
	_ = p.c.Remove(ctx)
}

// crashHelperEnv makes the test binary a backend that starts a container
// whose action escapes, prints the escapees' pids and its work dir, and
// waits to be killed.
const crashHelperEnv = "EDDY_PROCESS_CRASH_HELPER"

const escapeSh = "setsid sleep 1000 >/dev/null 2>&1 </dev/null & echo $!; setsid sh -c 'sleep 1001 >/dev/null 2>&1 </dev/null & echo $! > $TMPDIR/pid' </dev/null >/dev/null 2>&1; cat $TMPDIR/pid"

func init() {
	root := os.Getenv(crashHelperEnv)
	if root == "" {
		return
	}
	err := func() error {
		b, err := New(Config{Command: []string{os.Getenv("EDDY_PROCESS_RUNTIME")}, WorkRoot: root})
		if err != nil {
			return err
		}
		ctx := context.Background()
		c, err := b.Create(ctx, container.Spec{Name: "crash", Launcher: "native"})
		if err != nil {
			return err
		}
		go func() {
			for range c.Logs() {
			}
		}()
		cl := container.NewClient(c.Addr())
		if resp, err := cl.Init(ctx, container.InitRequest{Code: probeAction}); err != nil || resp.Status != 200 {
			return fmt.Errorf("init: %v %+v", err, resp)
		}
		v := probeValue(nil, escapeSh)
		resp, err := cl.Run(ctx, container.RunRequest{Value: v, ActivationID: "a"})
		if err != nil || resp.Status != 200 {
			return fmt.Errorf("run: %v %+v", err, resp)
		}
		var out struct{ Sh string }
		_ = json.Unmarshal(resp.Body, &out)
		fmt.Println("pids", strings.TrimSpace(out.Sh), c.(*Container).dir)
		select {}
	}()
	fmt.Println("error", err)
	os.Exit(1)
}

// TestRestartAfterCrash: a backend killed with SIGKILL leaves an action's
// setsid processes and its work dir; the next backend on the same work
// root kills and removes them.
func TestRestartAfterCrash(t *testing.T) {
	needRoot(t)
	root := workRoot(t)
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), crashHelperEnv+"="+root, "EDDY_PROCESS_RUNTIME="+runtimeBin)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "pids" {
		_ = helper.Process.Kill()
		_ = helper.Wait()
		t.Fatalf("helper said %q", line)
	}
	var pids []int
	for _, s := range f[1:3] {
		pid, _ := strconv.Atoi(s)
		pids = append(pids, pid)
	}
	dir := f[3]
	_ = helper.Process.Kill()
	_ = helper.Wait()
	// The escapees survive the crash (they left the runtime's group and
	// session), and the work dir stays.
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("escapee %d died with the crashed backend: nothing to clean up, the test proves nothing", pid)
		}
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}

	b, err := New(Config{Command: []string{runtimeBin}, WorkRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("escapee %d outlived the restart", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("stale work dir %s: %v", dir, err)
	}
	// A second backend on the same work root is refused while this one runs.
	if _, err := New(Config{Command: []string{runtimeBin}, WorkRoot: root}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second backend on a work root in use: %v", err)
	}
}

// TestNotIsolatedWhenOff: with isolation off (as when Eddy is not root),
// the same probe reads Eddy's private file and runs as Eddy's uid: the
// denials of TestIsolatedReads are the isolation's doing.
func TestNotIsolatedWhenOff(t *testing.T) {
	needRoot(t)
	db := filepath.Join(t.TempDir(), "eddy.db")
	if err := os.WriteFile(db, []byte("keys"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Command: []string{runtimeBin}, WorkRoot: workRoot(t), Isolation: Isolation{Off: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	out := newProbe(t, b, "open", 256).run(t, []string{db}, "")
	if out[db] != true || out["uid"] != float64(os.Geteuid()) {
		t.Errorf("not isolated: %v", out)
	}
}

// BenchmarkCreateRemove measures a container's start and removal, isolated
// (a uid of its own: chown, the limits check, kill by uid and the /proc
// scans) and not.
func BenchmarkCreateRemove(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("isolation needs root")
	}
	for _, off := range []bool{false, true} {
		b.Run(map[bool]string{false: "isolated", true: "off"}[off], func(b *testing.B) {
			dir := b.TempDir()
			for _, d := range []string{dir, filepath.Dir(dir)} {
				_ = os.Chmod(d, 0o711)
			}
			be, err := New(Config{Command: []string{runtimeBin}, WorkRoot: dir, Isolation: Isolation{Off: off}})
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close(context.Background())
			ctx := context.Background()
			for b.Loop() {
				c, err := be.Create(ctx, container.Spec{Name: "bench", Launcher: "native"})
				if err != nil {
					b.Fatal(err)
				}
				go func() {
					for range c.Logs() {
					}
				}()
				if err := c.Remove(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSetAsideUIDSettles: a uid whose processes outlived SIGKILL for
// exitWait is set aside, not waited for; a later creation kills what is
// left of it again and, once they are gone, frees the uid.
func TestSetAsideUIDSettles(t *testing.T) {
	b := isolatedBackend(t)
	// What a removal leaves when a process lingers: the uid taken and
	// aside, and a process of that uid still running.
	uid := b.firstUID + b.cfg.Isolation.SlotSize - 1
	lingerer := exec.Command("sleep", "600")
	lingerer.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	if err := lingerer.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = lingerer.Wait(); close(exited) }()
	b.mu.Lock()
	b.uids[uid], b.aside[uid] = true, true
	b.mu.Unlock()

	taken := func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.uids[uid] || b.aside[uid]
	}
	// Each creation settles the aside uids first; the lingerer is killed
	// by the first and the uid freed once it is gone.
	for i := 0; taken(); i++ {
		if i == 50 {
			t.Fatalf("uid %d still set aside after %d settles", uid, i)
		}
		b.settleAside()
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the set-aside uid's process was not killed")
	}
	// Nothing else is set aside by a normal create and remove.
	c, err := b.Create(context.Background(), container.Spec{Name: "after", Launcher: "native", MemoryMB: 64})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.aside) != 0 {
		t.Errorf("uids set aside after a clean removal: %v", b.aside)
	}
}

// TestKillUIDNeverCountsItself: killUID changes its thread's uid and lets
// the thread end; on the main thread Go wedges it instead, and /proc then
// shows this process with the container's uid. That uid must not look
// alive for it: a removal would wait 10 s for a process that cannot die
// (it once held a creation 20 s under load).
func TestKillUIDNeverCountsItself(t *testing.T) {
	b := isolatedBackend(t)
	uid := b.firstUID + b.cfg.Isolation.SlotSize - 2
	for range 200 { // one of them lands on the main thread, as a rule
		if err := killUID(uid); err != nil {
			t.Fatal(err)
		}
	}
	live, err := liveUIDs(uid, 1)
	if err != nil {
		t.Fatal(err)
	}
	if live[uid] != 0 {
		t.Errorf("uid %d has %d live processes after killUID with none started", uid, live[uid])
	}
	if err := b.killAll(uid, 0); err != nil {
		t.Error(err)
	}
}

// isolatedBackend is a backend running containers as their own uids,
// closed when the test ends; the test is skipped when it cannot isolate.
func isolatedBackend(t *testing.T) *Backend {
	t.Helper()
	needRoot(t)
	b, err := New(Config{Command: []string{runtimeBin}, WorkRoot: workRoot(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	if !b.iso {
		t.Skip("isolation is off")
	}
	return b
}
