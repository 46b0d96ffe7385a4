// Package process is the container backend for machines without Docker: a
// "container" is Eddy's runtime server (eddy-runtime, or "eddy runtime")
// started as a local child process listening on a loopback port.
//
// It enforces NO isolation: the action runs as the invoker's user, sees
// its file system and network, and has no memory, CPU, pid or file limits
// (Spec.MemoryMB and Spec.Image are ignored; no rlimits are set, because an
// address-space limit breaks runtimes that reserve address space, and the
// others protect nothing an action with the invoker's rights could not undo).
// Use it for development and single-user machines; use the Docker backend
// where actions are not trusted.
//
// What it does provide: each runtime runs in its own process group in its
// own work directory under Config.WorkRoot, with a small environment (PATH,
// HOME, locale, TMPDIR, PYENV_*, EDDY_PYTHON, then Spec.Env) rather than
// the invoker's; Remove kills the whole group (SIGTERM, then SIGKILL after
// 2 s) and deletes the work directory; on Linux a runtime dies with the
// process that started it (PDEATHSIG). Unix only.
package process

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
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
	Log      *slog.Logger
}

// How long Remove waits after SIGTERM before SIGKILL, and how long output
// is drained after a runtime exits before its pipes are closed (a process
// that left the group could hold them open forever).
const (
	killGrace  = 2 * time.Second
	drainGrace = 2 * time.Second
)

// Backend runs runtime servers as local processes.
type Backend struct {
	cfg      Config
	log      *slog.Logger
	instance string
	seq      atomic.Uint64

	mu     sync.Mutex
	live   map[string]*Container
	closed bool
}

var _ container.Backend = (*Backend)(nil)

// New checks cfg and creates the work root.
func New(cfg Config) (*Backend, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("process backend: no runtime command")
	}
	if cfg.WorkRoot == "" {
		cfg.WorkRoot = filepath.Join(os.TempDir(), "eddy-process")
	}
	if err := os.MkdirAll(cfg.WorkRoot, 0o755); err != nil {
		return nil, fmt.Errorf("process backend: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return &Backend{cfg: cfg, log: log, instance: hex.EncodeToString(rnd[:]), live: map[string]*Container{}}, nil
}

// Name is "process".
func (b *Backend) Name() string { return "process" }

// passEnv says which variables of the invoker's environment a runtime gets.
func passEnv(kv string) bool {
	k, _, _ := strings.Cut(kv, "=")
	switch k {
	case "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "EDDY_PYTHON":
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
	id := fmt.Sprintf("proc-%s-%d", b.instance, b.seq.Add(1))
	dir, err := os.MkdirTemp(b.cfg.WorkRoot, id+"-")
	if err != nil {
		return nil, whisk.E(op, whisk.Internal, "", err)
	}
	c, err := b.start(id, dir, spec)
	if err != nil {
		os.RemoveAll(dir)
		return nil, whisk.E(op, whisk.Internal, "", err)
	}
	b.mu.Lock()
	b.live[id] = c
	b.mu.Unlock()

	addr, err := c.awaitReady(ctx)
	if err != nil {
		_ = c.Remove(context.Background())
		if ctx.Err() != nil {
			return nil, whisk.E(op, whisk.Timeout, "", fmt.Errorf("runtime %s did not start: %w", id, err))
		}
		return nil, whisk.E(op, whisk.Internal, "", fmt.Errorf("runtime %s did not start: %w", id, err))
	}
	c.addr = addr
	b.log.Debug("process container started", "id", id, "name", spec.Name, "pid", c.Pid(), "addr", addr)
	return c, nil
}

func (b *Backend) start(id, dir string, spec container.Spec) (*Container, error) {
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
	cmd := exec.Command(b.cfg.Command[0], args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if passEnv(kv) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, err
	}
	readyW.Close()
	outW.Close()
	errW.Close()

	c := &Container{
		b: b, id: id, dir: dir, cmd: cmd, pgid: cmd.Process.Pid,
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
	cmd  *exec.Cmd
	pgid int

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
	// Nothing of the group may outlive its runtime server.
	_ = syscall.Kill(-c.pgid, syscall.SIGKILL)
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
		_ = syscall.Kill(-c.pgid, syscall.SIGKILL)
	}
	return nil
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
		if err := os.RemoveAll(c.dir); err != nil {
			c.removeErr = fmt.Errorf("remove %s: %w", c.id, err)
		}
		c.b.mu.Lock()
		delete(c.b.live, c.id)
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
	return errors.Join(errs...)
}
