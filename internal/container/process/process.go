// Package process is the container backend for machines without Docker: a
// "container" is Eddy's runtime server (eddy-runtime, or "eddy runtime")
// started as a local child process listening on a loopback port.
//
// Each runtime runs in its own process group in its own work directory
// under Config.WorkRoot, with a small environment (PATH, HOME, locale,
// TMPDIR, PYENV_*, EDDY_PYTHON, then Spec.Env) rather than the invoker's;
// Remove kills it (SIGTERM, then SIGKILL after 2 s) and deletes the work
// directory; on Linux a runtime dies with the process that started it
// (PDEATHSIG). A backend holds its work root alone (a lock file), and at
// start removes the work directories a previous run on it left. Unix only.
//
// Isolation (Linux, when Eddy runs as root; docs/tenants.md has the table
// of what it covers): every container runs as a uid of its own, from a
// slot of Isolation.SlotSize uids in a reserved range that no user of the
// host has (Isolation.UIDBase, no /etc/passwd entry), with no groups. Its
// work directory (also its HOME and TMPDIR) is that uid's, mode 0700, so
// an action reads neither another container's files nor Eddy's data dir,
// keys or /etc/shadow. The runtime gets rlimits (processes, open files,
// address space = its memory limit + Isolation.AddressSpaceHeadroomMB).
// Every process of a container — setsid and double forks included — is
// killed with it by uid (killUID), when the runtime exits, on Kill, Remove
// and Close; Eddy is their subreaper, so the ones that exit earlier leave
// no zombies; and a backend starting on a slot kills whatever the slot's
// uids still run (a previous run killed with SIGKILL). Not isolated:
// network (an action reaches every loopback port) and memory and CPU
// (no cgroup: the address-space limit bounds a process, not a container).
// When Eddy is not root, or Isolation.Off is set, actions run as Eddy's
// own user with none of this, and may read everything it can.
package process

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/runtime"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Config configures the backend.
type Config struct {
	// Command starts a runtime server, e.g. ["/path/eddy-runtime"] or
	// ["/path/eddy", "runtime"]; the backend appends --listen, --launcher,
	// --workdir and --ready-fd.
	Command []string
	// WorkRoot holds one work directory per container (default
	// $TMPDIR/eddy-process).
	WorkRoot string
	// RemoveStale says WorkRoot belongs to this backend alone (one per
	// data dir): New kills the processes a previous run left running
	// under it (an isolating backend kills its uid slot's instead). Stale
	// work directories are removed in any case.
	RemoveStale bool
	// Isolation applies when Eddy runs as root on Linux.
	Isolation Isolation
	Log       *slog.Logger
}

// Isolation configures how a root Eddy isolates containers. Zero fields
// take the defaults.
type Isolation struct {
	// Off runs containers as Eddy's own user even when it is root.
	Off bool
	// UIDBase is the first uid of the reserved range (default
	// 2,000,000,000, above any user a host has); the range holds Slots
	// slots of SlotSize uids (defaults 32768 and 4096: up to uid
	// 2,134,217,727, below 2^31). A backend takes one slot (LockDir), and
	// each of its containers a uid of the slot.
	UIDBase, SlotSize, Slots uint32
	// LockDir holds the slots' lock files; host-wide (default
	// /run/eddy/uid-slots).
	LockDir string
	// NProc bounds the processes and threads of a container's uid (default
	// 512); NoFile the open files of each of its processes (default 1024).
	NProc, NoFile uint64
	// AddressSpaceHeadroomMB is added to a container's memory limit to make
	// its processes' address-space limit (default 4096): the runtime
	// server, a Go program, reserves about 1.7 GB of address space at
	// start and node about 0.7 GB, which they never use.
	AddressSpaceHeadroomMB int64
}

// Isolation defaults.
const (
	DefaultUIDBase                = 2_000_000_000
	defaultSlotSize               = 4096
	defaultSlots                  = 32768
	DefaultLockDir                = "/run/eddy/uid-slots"
	defaultNProc                  = 512
	defaultNoFile                 = 1024
	defaultAddressSpaceHeadroomMB = 4096
	defaultMemoryMB               = 256
)

func (iso *Isolation) defaults() {
	if iso.UIDBase == 0 {
		iso.UIDBase = DefaultUIDBase
	}
	if iso.SlotSize == 0 {
		iso.SlotSize = defaultSlotSize
	}
	if iso.Slots == 0 {
		iso.Slots = defaultSlots
	}
	if iso.LockDir == "" {
		iso.LockDir = DefaultLockDir
	}
	if iso.NProc == 0 {
		iso.NProc = defaultNProc
	}
	if iso.NoFile == 0 {
		iso.NoFile = defaultNoFile
	}
	if iso.AddressSpaceHeadroomMB == 0 {
		iso.AddressSpaceHeadroomMB = defaultAddressSpaceHeadroomMB
	}
}

// Isolating says whether containers run as their own uids: on Linux, as
// root, unless cfg turns it off.
func Isolating(cfg Isolation) bool {
	return isolationSupported && !cfg.Off && os.Geteuid() == 0
}

// How long Remove waits after SIGTERM before SIGKILL, and how long output
// is drained after a runtime exits before its pipes are closed (a process
// that left the group could hold them open forever).
const (
	killGrace  = 2 * time.Second
	drainGrace = 2 * time.Second
	killWait   = 10 * time.Second
	// exitWait is how long a container's end waits for its uid's killed
	// processes to be gone; a uid whose processes take longer (a process
	// stuck in the kernel, or a huge one exiting on a loaded machine) is
	// set aside rather than waited for (Backend.aside).
	exitWait = time.Second
)

// Backend runs runtime servers as local processes.
type Backend struct {
	cfg      Config
	log      *slog.Logger
	instance string
	seq      atomic.Uint64
	rootLock *os.File // flock on WorkRoot/.lock, held for the backend's life

	// When isolating: the runtime command's binary where the containers'
	// uids can run it, the slot's uids and the lock that holds them.
	iso         bool
	runtime     string
	firstUID    uint32
	slotLock    *os.File
	reaper      *reaper
	warnOnce    sync.Once
	releaseOnce sync.Once

	mu   sync.Mutex
	live map[string]*Container
	uids map[uint32]bool // uids of live containers, and the ones set aside
	// aside are uids whose processes outlived SIGKILL for exitWait: taken
	// (in uids) until a later creation finds them gone (settleAside).
	aside   map[uint32]bool
	nextUID uint32
	closed  bool
	// starting counts runtimes being started, not in live yet.
	starting int
}

var _ container.Backend = (*Backend)(nil)

// New checks cfg, creates the work root and takes it (a second backend on
// the same work root fails), and removes what a previous run on it left:
// work directories and, when isolating, every process of its uid slot.
func New(cfg Config) (*Backend, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("process backend: no runtime command")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	iso := Isolating(cfg.Isolation)
	cfg.Isolation.defaults()
	if cfg.WorkRoot == "" {
		dir, err := os.MkdirTemp("", "eddy-process-")
		if err != nil {
			return nil, fmt.Errorf("process backend: %w", err)
		}
		cfg.WorkRoot = dir
	}
	abs, err := filepath.Abs(cfg.WorkRoot)
	if err != nil {
		return nil, fmt.Errorf("process backend: %w", err)
	}
	cfg.WorkRoot = abs
	mode := os.FileMode(0o755)
	if iso {
		// The containers' uids traverse it to their work dirs; listing
		// it, they would learn the others' names.
		mode = 0o711
	}
	if err := privateDir(cfg.WorkRoot, mode); err != nil {
		return nil, fmt.Errorf("process backend: work root: %w", err)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	b := &Backend{cfg: cfg, log: log, instance: hex.EncodeToString(rnd[:]), iso: iso,
		runtime: cfg.Command[0], live: map[string]*Container{}, uids: map[uint32]bool{}, aside: map[uint32]bool{}}
	if err := b.open(); err != nil {
		b.releaseOnce.Do(b.release)
		return nil, fmt.Errorf("process backend: %w", err)
	}
	if iso {
		log.Info("process backend isolates containers", "uids", fmt.Sprintf("%d-%d", b.firstUID, b.firstUID+cfg.Isolation.SlotSize-1),
			"work_root", cfg.WorkRoot)
	} else {
		why := "not running as root"
		if !isolationSupported {
			why = "not Linux"
		} else if cfg.Isolation.Off {
			why = "turned off"
		}
		log.Info("process backend runs actions as Eddy's own user, not isolated", "reason", why)
	}
	return b, nil
}

func (b *Backend) open() error {
	f, err := os.OpenFile(filepath.Join(b.cfg.WorkRoot, ".lock"), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	b.rootLock = f
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("work root %s is in use by another Eddy (%w)", b.cfg.WorkRoot, err)
	}
	if b.iso {
		if err := reachable(b.cfg.WorkRoot); err != nil {
			return fmt.Errorf("work root: %w (the containers' uids must reach their work dirs)", err)
		}
		iso := b.cfg.Isolation
		b.firstUID, b.slotLock, err = claimSlot(iso, iso.LockDir, filepath.Join(b.cfg.WorkRoot, ".uid-slot"), b.cfg.WorkRoot)
		if err != nil {
			return fmt.Errorf("uid slot: %w", err)
		}
		if err := b.killSlot(); err != nil {
			return err
		}
		if b.runtime, err = b.runnableRuntime(); err != nil {
			return err
		}
		b.reaper, err = startReaper(b.firstUID, iso.SlotSize, b.isServer)
		if err != nil {
			return err
		}
	}
	if b.cfg.RemoveStale && !b.iso {
		// Before their directories go: what runs there would write on.
		killStale(b.cfg.WorkRoot, b.log)
	}
	// Work dirs a previous run left (it was killed, or its Close failed).
	ents, err := os.ReadDir(b.cfg.WorkRoot)
	if err != nil {
		return err
	}
	stale := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "proc-") {
			if err := os.RemoveAll(filepath.Join(b.cfg.WorkRoot, e.Name())); err != nil {
				return fmt.Errorf("removing a stale work dir: %w", err)
			}
			stale++
		}
	}
	if stale > 0 {
		b.log.Info("removed work dirs a previous run left", "count", stale)
	}
	return nil
}

// killSlot kills every process the slot's uids still run: a previous
// backend on the slot was killed before it could remove its containers.
// A uid whose processes outlive the kill (a process stuck in the kernel,
// or one whose exit takes long on a loaded machine: a race-built
// runtime's huge mappings) is kept out of use, as Remove does, rather
// than failing the start.
func (b *Backend) killSlot() error {
	live, err := liveUIDs(b.firstUID, b.cfg.Isolation.SlotSize)
	if err != nil {
		return err
	}
	n := 0
	for uid, procs := range live {
		if err := b.killAll(uid, killWait); err != nil {
			b.log.Error("a uid a previous run left still runs processes after SIGKILL: kept out of use", "uid", uid, "err", err)
			b.mu.Lock()
			b.uids[uid] = true
			b.aside[uid] = true
			b.mu.Unlock()
		}
		n += procs
	}
	if n > 0 {
		b.log.Warn("killed processes a previous run left", "processes", n, "uids", len(live))
	}
	return nil
}

// killAll kills every process of uid and waits until none is left alive
// (up to wait: a process stuck in the kernel dies when it leaves it).
// One scan of /proc per round both counts the living and reaps the
// zombies that are this process's (orphans it is the subreaper of).
func (b *Backend) killAll(uid uint32, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	bo := retry.New(time.Millisecond, 50*time.Millisecond)
	for {
		if err := killUID(uid); err != nil {
			return err
		}
		live, err := b.reapUID(uid)
		if err != nil || live == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("uid %d still has %d processes %v after SIGKILL", uid, live, wait)
		}
		time.Sleep(bo.Next()) // SIGKILL is delivered; the processes are exiting
	}
}

// isServer says whether pid may be a runtime server of this backend (os/exec
// waits for those): one it runs, or any while one is being started and is
// not in live yet.
func (b *Backend) isServer(pid int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.starting > 0 {
		return true
	}
	for _, c := range b.live {
		if c.pgid == pid {
			return true
		}
	}
	return false
}

// reachable checks that every directory above path lets other users
// through.
func reachable(path string) error {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s (mode %o) does not let other users through", dir, fi.Mode().Perm())
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// runnableRuntime returns the runtime command's binary, or, when the
// containers' uids cannot run it where it is (a private directory), a
// link to it (or a copy) in the work root.
func (b *Backend) runnableRuntime() (string, error) {
	bin := b.cfg.Command[0]
	if !filepath.IsAbs(bin) {
		p, err := exec.LookPath(bin)
		if err != nil {
			return "", err
		}
		bin = p
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o005 == 0o005 && reachable(bin) == nil {
		return bin, nil
	}
	dir := filepath.Join(b.cfg.WorkRoot, "bin")
	if err := privateDir(dir, 0o711); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, filepath.Base(bin))
	_ = os.Remove(dst)
	if fi.Mode().Perm()&0o005 == 0o005 && os.Link(bin, dst) == nil {
		return dst, nil
	}
	src, err := os.Open(bin)
	if err != nil {
		return "", err
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return "", err
	}
	return dst, out.Close()
}

// release gives up the work root and the uid slot, and removes the link
// to (or copy of) the runtime binary, if it made one: it would keep a
// deleted binary's space (tests start many backends on new work roots).
func (b *Backend) release() {
	if b.runtime != b.cfg.Command[0] {
		_ = os.RemoveAll(filepath.Join(b.cfg.WorkRoot, "bin"))
	}
	if b.reaper != nil {
		b.reaper.close()
	}
	if b.slotLock != nil {
		b.slotLock.Close()
	}
	if b.rootLock != nil {
		b.rootLock.Close()
	}
}

// settleAside frees the set-aside uids whose processes are gone now (one
// more SIGKILL each, and a scan of /proc). It runs before a creation takes
// a uid; it costs nothing while none is set aside.
func (b *Backend) settleAside() {
	b.mu.Lock()
	uids := slices.Collect(maps.Keys(b.aside))
	b.mu.Unlock()
	for _, uid := range uids {
		if b.killAll(uid, 0) != nil {
			continue
		}
		b.mu.Lock()
		delete(b.aside, uid)
		delete(b.uids, uid)
		b.mu.Unlock()
		b.log.Info("a set-aside uid's processes are gone: in use again", "uid", uid)
	}
}

// allocUID takes a free uid of the slot, round robin, so that a uid is
// used again as late as possible.
func (b *Backend) allocUID() (uint32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.cfg.Isolation.SlotSize
	for range n {
		i := b.nextUID
		b.nextUID = (b.nextUID + 1) % n
		if uid := b.firstUID + i; !b.uids[uid] {
			b.uids[uid] = true
			return uid, nil
		}
	}
	return 0, fmt.Errorf("all %d uids of the slot are in use", n)
}

func (b *Backend) freeUID(uid uint32) {
	b.mu.Lock()
	delete(b.uids, uid)
	b.mu.Unlock()
}

// WarnShared logs, once per backend, that tenants share this backend and
// what it does not isolate between them (docs/tenants.md).
func (b *Backend) WarnShared(why string) {
	b.warnOnce.Do(func() {
		if b.iso {
			b.log.Warn("the process backend runs several tenants' actions: they run as separate uids, but share the network "+
				"(every loopback port, including other tenants' runtimes) and have no memory or CPU limit; use the Docker backend for untrusted tenants",
				"why", why)
			return
		}
		b.log.Warn("the process backend runs several tenants' actions as Eddy's own user, NOT isolated: an action can read the data dir "+
			"(database, code and parameters of every action, activation records), other tenants' work dirs and every file Eddy's user can, "+
			"signal other actions, and use the network; run Eddy as root for per-container uids, or use the Docker backend",
			"why", why)
	})
}

// Name is "process".
func (b *Backend) Name() string { return "process" }

// passEnv says which variables of the invoker's environment a runtime gets.
func passEnv(kv string) bool {
	k, _, _ := strings.Cut(kv, "=")
	switch k {
	case "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "EDDY_PYTHON",
		"GORACE": // a race-enabled build's runtime servers (tests) take the platform's race options
		return true
	}
	return strings.HasPrefix(k, "LC_") || strings.HasPrefix(k, "PYENV_")
}

// MsgNeedsImage is the error of an action that brings its own image when
// the invoker runs the process backend.
func MsgNeedsImage(image string) string {
	return fmt.Sprintf("The action runs the image '%s', which needs the Docker backend; this invoker runs actions as local processes.", image)
}

// Create starts a runtime server and returns once it listens.
func (b *Backend) Create(ctx context.Context, spec container.Spec) (container.Container, error) {
	const op = "process.Create"
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, whisk.E(op, whisk.Unavailable, "", errors.New("the process backend is closed"))
	}
	if spec.Launcher == "" {
		// A blackbox action brings an image; only a container backend runs one.
		return nil, whisk.E(op, whisk.Invalid, MsgNeedsImage(spec.Image), nil)
	}
	if ns := spec.Labels["eddy.namespace"]; ns != "" && ns != whisk.GuestNamespace {
		b.WarnShared("namespace " + ns + " runs an action")
	}
	id := fmt.Sprintf("proc-%s-%d", b.instance, b.seq.Add(1))
	var uid uint32
	if b.iso {
		var err error
		b.settleAside()
		if uid, err = b.allocUID(); err != nil {
			return nil, whisk.E(op, whisk.Unavailable, "", err)
		}
	}
	dir, err := b.workDir(id, uid)
	if err != nil {
		b.freeUID(uid)
		return nil, whisk.E(op, whisk.Internal, "", err)
	}
	b.mu.Lock()
	b.starting++
	b.mu.Unlock()
	c, err := b.start(id, dir, uid, spec)
	b.mu.Lock()
	b.starting--
	if err == nil {
		b.live[id] = c
	}
	b.mu.Unlock()
	if err != nil {
		os.RemoveAll(dir)
		b.freeUID(uid)
		return nil, whisk.E(op, whisk.Internal, "", err)
	}

	addr, err := c.awaitReady(ctx)
	if err != nil {
		_ = c.Remove(context.Background())
		if ctx.Err() != nil {
			return nil, whisk.E(op, whisk.Timeout, "", fmt.Errorf("runtime %s did not start: %w", id, err))
		}
		return nil, whisk.E(op, whisk.Internal, "", fmt.Errorf("runtime %s did not start: %w", id, err))
	}
	if b.iso {
		if err := checkLimits(c.Pid(), b.cfg.Isolation, memoryMB(spec)); err != nil {
			_ = c.Remove(context.Background())
			return nil, whisk.E(op, whisk.Internal, "", fmt.Errorf("runtime %s: %w", id, err))
		}
	}
	c.addr = addr
	b.log.Debug("process container started", "id", id, "name", spec.Name, "pid", c.Pid(), "addr", addr)
	return c, nil
}

// memoryMB is spec's memory limit, or the default.
func memoryMB(spec container.Spec) int64 {
	if spec.MemoryMB > 0 {
		return spec.MemoryMB
	}
	return defaultMemoryMB
}

// workDir creates a container's work directory; when isolating, it and its
// tmp belong to the container's uid, mode 0700.
func (b *Backend) workDir(id string, uid uint32) (string, error) {
	dir, err := os.MkdirTemp(b.cfg.WorkRoot, id+"-")
	if err != nil || !b.iso {
		return dir, err
	}
	tmp := filepath.Join(dir, "tmp")
	err = os.Mkdir(tmp, 0o700)
	for _, d := range []string{tmp, dir} {
		if err == nil {
			err = os.Lchown(d, int(uid), int(uid))
		}
	}
	if err != nil {
		os.RemoveAll(dir)
	}
	return dir, err
}

func (b *Backend) start(id, dir string, uid uint32, spec container.Spec) (*Container, error) {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	readyR, readyW, err := pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}

	args := append(append([]string(nil), b.cfg.Command[1:]...),
		"--listen", "127.0.0.1:0", "--launcher", spec.Launcher, "--workdir", dir, "--ready-fd", "3")
	cmd := exec.Command(b.runtime, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if passEnv(kv) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if b.iso {
		// The container's own home and temporary directory; the later
		// entries win.
		cmd.Env = append(cmd.Env, "HOME="+dir, "TMPDIR="+filepath.Join(dir, "tmp"), "USER=", "LOGNAME=",
			runtime.RlimitsEnv+"="+rlimits(b.cfg.Isolation, memoryMB(spec)))
	}
	for k, v := range spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.SysProcAttr = sysProcAttr()
	if b.iso {
		credential(cmd.SysProcAttr, uid)
	}
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, err
	}

	readyW.Close()
	outW.Close()
	errW.Close()

	c := &Container{
		b: b, id: id, dir: dir, uid: uid, cmd: cmd, pgid: cmd.Process.Pid,
		ready:   readyR,
		logs:    make(chan container.LogLine, 1024),
		done:    make(chan struct{}),
		removed: make(chan struct{}),
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go c.readStream(&readers, outR, container.Stdout)
	go c.readStream(&readers, errR, container.Stderr)
	c.drained = make(chan struct{})
	go func() {
		readers.Wait()
		close(c.logs)
		close(c.drained)
	}()
	go c.wait(outR, errR)
	return c, nil
}

// Container is one runtime server process.
type Container struct {
	b    *Backend
	id   string
	dir  string
	addr string
	uid  uint32 // when isolating
	// killFailed: killing the uid's processes failed once (Remove
	// then keeps the uid out of use unless a second try works).
	killFailed atomic.Bool
	cmd        *exec.Cmd
	pgid       int

	ready   *os.File
	logs    chan container.LogLine
	drained chan struct{} // closed once both streams are read to the end
	done    chan struct{}
	exit    container.ExitInfo
	removed chan struct{} // closed when Remove starts: output is dropped from then on

	tailMu sync.Mutex
	tail   []string // the last stderr lines, for start-up errors

	removeOnce sync.Once
	removeErr  error
}

var _ container.Container = (*Container)(nil)

// ID is unique within the backend.
func (c *Container) ID() string { return c.id }

// Addr is the runtime's 127.0.0.1:port.
func (c *Container) Addr() string { return c.addr }

// Pid is the runtime server's pid, which is also its process group id.
func (c *Container) Pid() int { return c.pgid }

// Logs delivers stdout and stderr lines, timestamped when read.
func (c *Container) Logs() <-chan container.LogLine { return c.logs }

// Done is closed when the runtime server has exited.
func (c *Container) Done() <-chan struct{} { return c.done }

// Exit is valid once Done is closed; a death by signal N is code 128+N.
func (c *Container) Exit() container.ExitInfo {
	<-c.done
	return c.exit
}

func (c *Container) wait(outR, errR *os.File) {
	err := c.cmd.Wait()
	code := 0
	if err != nil {
		code = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		}
	}
	c.exit = container.ExitInfo{Code: code}
	// Nothing of the container may outlive its runtime server.
	c.killAll()
	deadline := time.Now().Add(drainGrace)
	_ = outR.SetReadDeadline(deadline)
	_ = errR.SetReadDeadline(deadline)
	close(c.done)
}

func (c *Container) readStream(wg *sync.WaitGroup, f *os.File, stream string) {
	defer wg.Done()
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		chunk, err := r.ReadSlice('\n')
		now := time.Now()
		if len(chunk) > 0 {
			text := strings.TrimSuffix(string(chunk), "\n")
			if stream == container.Stderr {
				c.addTail(text)
			}
			select {
			case c.logs <- container.LogLine{Time: now, Stream: stream, Text: text}:
			case <-c.removed:
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (c *Container) addTail(line string) {
	c.tailMu.Lock()
	defer c.tailMu.Unlock()
	c.tail = append(c.tail, line)
	if len(c.tail) > 20 {
		c.tail = c.tail[len(c.tail)-20:]
	}
}

func (c *Container) stderrTail() string {
	c.tailMu.Lock()
	defer c.tailMu.Unlock()
	return strings.Join(c.tail, "\n")
}

// awaitReady reads the address the runtime writes on its ready fd.
func (c *Container) awaitReady(ctx context.Context) (string, error) {
	defer c.ready.Close()
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(c.ready).ReadString('\n')
		got <- strings.TrimSpace(line)
	}()
	exited := func() error {
		// Let the output drain so the error can say why.
		select {
		case <-c.drained:
		case <-time.After(drainGrace):
		}
		msg := fmt.Sprintf("exited with code %d", c.exit.Code)
		if tail := c.stderrTail(); tail != "" {
			msg += ": " + tail
		}
		return errors.New(msg)
	}
	select {
	case addr := <-got:
		if _, _, err := net.SplitHostPort(addr); err != nil {
			select {
			case <-c.done:
				return "", exited()
			case <-time.After(killGrace):
				return "", fmt.Errorf("no address on the ready fd (got %q)", addr)
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		return addr, nil
	case <-c.done:
		return "", exited()
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Kill kills the runtime's whole process group at once (SIGKILL); its
// output up to then is still delivered on Logs.
func (c *Container) Kill(context.Context) error {
	select {
	case <-c.done:
	default:
		c.killAll()
	}
	return nil
}

// killAll kills the runtime's process group and, when isolating, every
// process of the container's uid.
func (c *Container) killAll() {
	_ = syscall.Kill(-c.pgid, syscall.SIGKILL)
	if c.b.iso {
		if err := c.b.killAll(c.uid, exitWait); err != nil {
			c.killFailed.Store(true)
			c.b.log.Warn("a container's processes outlive SIGKILL: its uid is set aside until they are gone", "id", c.id, "uid", c.uid, "err", err)
		}
	}
}

// OOMKilled is false: the process backend gives a runtime no memory
// cgroup of its own, so no OOM kill is counted for it (an action's child
// killed for memory is an exit like any other).
func (c *Container) OOMKilled(context.Context) bool { return false }

// Remove stops the runtime's whole process group (SIGTERM, SIGKILL after
// 2 s or when ctx ends), waits for it and deletes the work directory.
func (c *Container) Remove(ctx context.Context) error {
	c.removeOnce.Do(func() {
		close(c.removed)
		select {
		case <-c.done:
		default:
			_ = syscall.Kill(-c.pgid, syscall.SIGTERM)
			t := time.NewTimer(killGrace)
			select {
			case <-c.done:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			select {
			case <-c.done:
			default:
				_ = syscall.Kill(-c.pgid, syscall.SIGKILL)
				<-c.done
			}
		}
		// What the action started outside the group (setsid) is gone
		// too: wait killed it by uid once the runtime exited.
		if err := os.RemoveAll(c.dir); err != nil {
			c.removeErr = fmt.Errorf("remove %s: %w", c.id, err)
		}
		// A uid that may still run processes is never given to another
		// container (another tenant's, maybe): it stays taken until they
		// are gone, which a later creation checks (settleAside), or the
		// backend's next start (killSlot). Remove does not wait for them.
		free := !c.killFailed.Load() || c.b.killAll(c.uid, 0) == nil
		c.b.mu.Lock()
		delete(c.b.live, c.id)
		if free {
			delete(c.b.uids, c.uid)
		} else {
			c.b.aside[c.uid] = true
		}
		c.b.mu.Unlock()
		c.b.log.Debug("process container removed", "id", c.id, "exit", c.exit.Code)
	})
	return c.removeErr
}

// Close removes every container still live; Create fails afterwards.
func (b *Backend) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	cs := make([]*Container, 0, len(b.live))
	for _, c := range b.live {
		cs = append(cs, c)
	}
	b.mu.Unlock()
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Remove(ctx)
		}()
	}
	wg.Wait()
	b.mu.Lock()
	idle := len(b.live) == 0
	b.mu.Unlock()
	if idle {
		b.releaseOnce.Do(b.release)
	}
	return errors.Join(errs...)
}
