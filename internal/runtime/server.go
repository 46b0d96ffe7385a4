package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Sentinel is the line written to stdout and stderr after each /run and
// failed /init (the same string as container.Sentinel; this package imports nothing
// of Eddy's so that the runtime binary stays small).
const Sentinel = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"

// Messages, worded as OpenWhisk's Go actionloop proxy words them.
const (
	msgReinit       = "Cannot initialize the action more than once."
	msgNoAction     = "no action defined yet"
	msgExited       = "command exited"
	msgNotDictOrArr = "The action did not return a dictionary or array."
	msgNoCode       = "Missing main/no code to execute."
)

// maxBody bounds /init and /run bodies.
const maxBody = 128 << 20

// Config configures a Server.
type Config struct {
	// Launcher says how code runs: "python", "nodejs", "native" or
	// "skeleton" (see the package comment).
	Launcher string
	// WorkDir receives the action's files; it is created if missing.
	WorkDir string
	// Env is the server's environment ("K=V"); the action's process starts
	// with it, then the init env. Nil means os.Environ().
	Env []string
	// Stdout and Stderr are the action's stdout and stderr and receive the
	// sentinels. Give *os.File values (as Main does): the child then writes
	// to them directly, so its output precedes the sentinel that follows
	// its answer. Other writers are fed through a copying goroutine and
	// lose that ordering.
	Stdout, Stderr io.Writer
	// Concurrency is how many /run calls may be in flight before an /init
	// asks for more; only 1 is supported (an actionloop child answers one
	// line at a time). 0 means 1. An /init with "concurrency" > 1 switches
	// the server to concurrent mode (concurrent.go).
	Concurrency int
	// OOMFiles are the cgroup files whose "oom_kill N" counter tells that
	// the kernel killed the action's process for memory (nil: the cgroup v2
	// and v1 files of the server's own cgroup).
	OOMFiles []string
}

// Server serves the runtime protocol for one action.
type Server struct {
	cfg      Config
	launcher launcher
	outMu    sync.Mutex // serializes the server's own writes to Stdout/Stderr

	// sent writes the sentinels in one-at-a-time mode (nil once Close
	// ran). It is not under outMu: Close must not wait for a sentinel
	// write parked on a full pipe, and closing the files wakes that write.
	sent atomic.Pointer[sentinelFDs]

	initMu sync.Mutex // serializes /init

	// slots has one token per /run that may be in flight. With more than one
	// child (a pool, for concurrency > 1) each slot would own one child.
	slots chan struct{}

	mu          sync.Mutex
	initialized bool
	child       *child // nil before /init and after the child exited
	closed      bool

	// The skeleton launcher has no child: /init leaves the action here
	// (nil before /init and after an /init without code), and a run in
	// flight can be cancelled by Close.
	skeleton  *skeletonAction
	cancelRun context.CancelFunc

	conc    *conc       // concurrent mode (nil: one run at a time)
	inl     *inlineLogs // inline-logs mode (inline.go; nil: the lines go to Stdout and Stderr)
	markSeq int         // mark ids (passMark)

	// oomBase is the cgroup's oom_kill counter when the action's process
	// started (or when a child's exit was last explained), oomCounted
	// whether there is one: a child that exits with the counter above it
	// was killed for memory. Reading it there and not around every run
	// keeps a file read off the warm path.
	oomBase    int64
	oomCounted bool
}

// NewServer checks cfg and returns a Server that has no action yet.
func NewServer(cfg Config) (*Server, error) {
	l, err := newLauncher(cfg.Launcher)
	if err != nil {
		return nil, err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1
	}
	if cfg.Concurrency != 1 {
		return nil, fmt.Errorf("concurrency %d: only 1 is supported", cfg.Concurrency)
	}
	if cfg.WorkDir == "" {
		return nil, errors.New("no work directory")
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	if cfg.OOMFiles == nil {
		cfg.OOMFiles = oomFiles
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	s := &Server{cfg: cfg, launcher: l, slots: make(chan struct{}, cfg.Concurrency)}
	sf := &sentinelFDs{}
	sf.out = sf.open(cfg.Stdout)
	sf.err = sf.open(cfg.Stderr)
	s.sent.Store(sf)
	return s, nil
}

// sentinelFDs write the sentinels: Stdout and Stderr opened again
// non-blocking when they are pipes, written with raw system calls
// (rawio_linux.go), else nil (then Stdout and Stderr serve). files are
// those files, closed by Close.
type sentinelFDs struct {
	out, err *rawFD
	files    []*os.File
}

// open opens w again for the sentinels when it is a pipe.
func (sf *sentinelFDs) open(w io.Writer) *rawFD {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	nf := reopenNonblock(f)
	if nf == nil {
		return nil
	}
	r, ok := newRawFD(nf)
	if !ok {
		nf.Close()
		return nil
	}
	sf.files = append(sf.files, nf)
	return r
}

// getenv looks a key up in the server's environment (the last one wins).
func (s *Server) getenv(key string) string {
	for i := len(s.cfg.Env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(s.cfg.Env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// ServeHTTP serves POST /init and POST /run; any other path answers 200
// with an empty body, as OpenWhisk's proxy does.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var handle func(context.Context, []byte) (int, any)
	switch r.URL.Path {
	case "/init":
		handle = s.init
	case "/run":
		handle = s.run
		s.mu.Lock()
		c := s.conc
		s.mu.Unlock()
		if c != nil {
			s.serveConcurrent(w, r, c)
			return
		}
	case "/logs":
		if il := s.inlineMode(); il != nil && r.Method == http.MethodPost {
			s.serveLogs(w, r, il)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	default:
		w.WriteHeader(http.StatusOK)
		return
	}
	var il *inlineLogs
	if r.URL.Path == "/run" {
		if il = s.inlineMode(); il != nil {
			il.startRun()
		}
	}
	status, resp := http.StatusMethodNotAllowed, any(errBody("method not allowed"))
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			status, resp = http.StatusBadRequest, errBody("cannot read the request: "+err.Error())
		} else {
			status, resp = handle(r.Context(), body)
		}
	}
	// The sentinels go out before the answer, so a caller that has the
	// answer knows they are on their way. As in OpenWhisk's runtimes, a
	// successful /init writes none (its output belongs to the first run's
	// logs), except when it entered concurrent mode: the plain lines of
	// /init then end at plain sentinels, tagged lines follow. In
	// inline-logs mode a run's lines go in its answer instead, unless its
	// caller went away: they are then kept for POST /logs.
	var logs []byte
	switch {
	case il != nil:
		if r.Context().Err() == nil {
			il.flush(r.Context())
			logs = il.take()
		}
	case r.URL.Path != "/init" || status != http.StatusOK || s.concurrent():
		s.sentinels()
	}
	if text, ok := resp.(plainText); ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, string(text))
		return
	}
	out, ok := resp.([]byte) // a run's answer, passed through as the child wrote it
	if !ok {
		out, _ = json.Marshal(resp)
	}
	w.Header().Set("Content-Type", "application/json")
	if il != nil {
		w.Header().Set(InlineLogsHeader, strconv.Itoa(len(out)))
		out = append(out[:len(out):len(out)], logs...)
	}
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// concurrent reports whether the server is in concurrent mode.
func (s *Server) concurrent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conc != nil
}

func errBody(msg string) map[string]string { return map[string]string{"error": msg} }

// sentinelLine is the sentinel and its newline.
var sentinelLine = []byte(Sentinel + "\n")

func (s *Server) sentinels() {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	sf := s.sent.Load()
	if sf == nil {
		sf = &sentinelFDs{}
	}
	// A failed write (the pipe's reader is gone) is done again the usual
	// way, so that it fails as it always did (os raises SIGPIPE for a
	// broken stdout or stderr); one cut short by Close is not.
	if sf.out == nil || writeFailed(sf.out.Write(sentinelLine)) {
		_, _ = s.cfg.Stdout.Write(sentinelLine)
	}
	if sf.err == nil || writeFailed(sf.err.Write(sentinelLine)) {
		_, _ = s.cfg.Stderr.Write(sentinelLine)
	}
}

// writeFailed tells whether a sentinel write failed for a reason other
// than Close closing its file.
func writeFailed(_ int, err error) bool {
	return err != nil && !errors.Is(err, os.ErrClosed) && !errors.Is(err, net.ErrClosed)
}

// logf writes a line to stderr (it becomes part of the activation's logs).
func (s *Server) logf(format string, args ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	_, _ = io.WriteString(s.cfg.Stderr, msg)
}

// initValue is the "value" of an /init body.
type initValue struct {
	Name   string                     `json:"name"`
	Main   string                     `json:"main"`
	Binary bool                       `json:"binary"`
	Code   string                     `json:"code"`
	Env    map[string]json.RawMessage `json:"env"`
	// Concurrency > 1 asks for concurrent mode (Eddy's extension; the
	// python, nodejs and native launchers; ignored by skeleton).
	Concurrency int `json:"concurrency"`
	// Logs "inline" asks for inline-logs mode (Eddy's extension, one run
	// at a time; inline.go), keeping at most LogLimit bytes of lines per run.
	Logs     string `json:"logs"`
	LogLimit int64  `json:"log_limit"`
}

func (s *Server) init(ctx context.Context, body []byte) (int, any) {
	s.initMu.Lock()
	defer s.initMu.Unlock()
	s.mu.Lock()
	initialized, closed := s.initialized, s.closed
	s.mu.Unlock()
	if initialized {
		return http.StatusForbidden, errBody(msgReinit)
	}
	if closed {
		return http.StatusServiceUnavailable, errBody("the runtime is shutting down")
	}
	var req struct {
		Value *initValue `json:"value"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return http.StatusBadRequest, errBody("The request body is not valid JSON: " + err.Error())
	}
	if req.Value == nil || strings.TrimSpace(req.Value.Code) == "" {
		if s.cfg.Launcher == LauncherSkeleton {
			// actionproxy.py keeps its stub action: runs answer msgStub.
			return s.initialize(nil, nil, nil)
		}
		return http.StatusForbidden, errBody(msgNoCode)
	}
	cmd, err := s.launcher.prepare(s.cfg.WorkDir, req.Value, s.getenv)
	if err != nil {
		return s.initFailed(err)
	}
	env := append([]string(nil), s.cfg.Env...)
	for k, raw := range req.Value.Env {
		env = append(env, k+"="+envString(raw))
	}
	env = append(env, cmd.env...)
	if cmd.perRun {
		return s.initialize(nil, &skeletonAction{cmd: cmd, env: env}, nil)
	}
	if n := req.Value.Concurrency; n > 1 {
		c, status, resp := s.startConcurrent(cmd, env, n, s.cfg.Launcher == LauncherPython || s.cfg.Launcher == LauncherNodejs, ctx)
		if c == nil {
			return status, resp
		}
		return s.initializeConcurrent(c)
	}
	var il *inlineLogs
	stdout, stderr := s.cfg.Stdout, s.cfg.Stderr
	if req.Value.Logs == InlineLogs {
		if il, err = s.newInlineLogs(req.Value.LogLimit); err == nil {
			stdout, stderr = il.out.w, il.err.w
		} else {
			il = nil // the caller reads the container's streams, as it does when the mode is unknown
		}
	}
	ch, err := startChild(cmd, env, stdout, stderr)
	if err != nil {
		if il != nil {
			il.close()
		}
		return s.initFailed(&initError{status: http.StatusBadGateway, msg: msgNoBinary, detail: "cannot start the action: " + err.Error()})
	}
	if cmd.waitAck {
		if status, resp, ok := s.awaitAck(ctx, ch); !ok {
			ch.kill()
			if il != nil {
				il.failed(ctx)
			}
			return status, resp
		}
	}
	return s.initialize(ch, nil, il)
}

// initialize records a successful /init: an actionloop child, or a
// skeleton action (nil for an /init without code). With il (inline-logs
// mode) the answer says so ("logs": "inline"), which tells the caller
// that runs answer with their lines (inline.go).
func (s *Server) initialize(ch *child, act *skeletonAction, il *inlineLogs) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		if ch != nil {
			ch.kill()
		}
		if il != nil {
			il.close()
		}
		return http.StatusServiceUnavailable, errBody("the runtime is shutting down")
	}
	s.initialized = true
	if s.cfg.Launcher == LauncherSkeleton {
		s.skeleton = act
		return http.StatusOK, plainText(msgInitOK)
	}
	s.child = ch
	s.oomBase, s.oomCounted = oomKills(s.cfg.OOMFiles)
	if il != nil {
		s.inl = il
		return http.StatusOK, map[string]any{"ok": true, "logs": InlineLogs}
	}
	return http.StatusOK, map[string]bool{"ok": true}
}

// initializeConcurrent records a successful /init in concurrent mode; the
// answer says so ("concurrency": N), which tells the invoker that this
// runtime tags its output per run.
func (s *Server) initializeConcurrent(c *conc) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.close()
		return http.StatusServiceUnavailable, errBody("the runtime is shutting down")
	}
	s.initialized = true
	s.conc = c
	s.oomBase, s.oomCounted = oomKills(s.cfg.OOMFiles)
	return http.StatusOK, map[string]any{"ok": true, "concurrency": c.n}
}

// awaitAck reads the child's start-up line: {"ok":true}, or {"ok":false,
// "error":...} when the action could not be loaded.
func (s *Server) awaitAck(ctx context.Context, ch *child) (int, any, bool) {
	line, err := ch.next(ctx)
	switch {
	case errors.Is(err, errExited):
		return http.StatusBadGateway, errBody(msgExited), false
	case err != nil:
		return http.StatusInternalServerError, errBody("initialization was cancelled: " + err.Error()), false
	}
	var ack struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(line, &ack); err != nil {
		s.logf("the action's acknowledgement is not JSON: %s", bytes.TrimSpace(line))
		return http.StatusBadGateway, errBody(msgNoBinary), false
	}
	if !ack.OK {
		if ack.Error == "" {
			ack.Error = msgNoBinary
		}
		return http.StatusBadGateway, errBody(ack.Error), false
	}
	return 0, nil, true
}

func (s *Server) initFailed(err error) (int, any) {
	var ie *initError
	if !errors.As(err, &ie) {
		ie = &initError{status: http.StatusBadGateway, msg: msgNoBinary, detail: err.Error()}
	}
	if ie.detail != "" {
		s.logf("%s", ie.detail)
	}
	return ie.status, errBody(ie.msg)
}

// envString renders an init env value: strings as they are, anything else
// as its JSON text.
func envString(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(bytes.TrimSpace(raw))
}

func (s *Server) run(ctx context.Context, body []byte) (int, any) {
	if s.cfg.Launcher == LauncherSkeleton {
		return s.runSkeleton(ctx, body)
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-ctx.Done():
		return http.StatusServiceUnavailable, errBody("the run was cancelled while waiting for the action")
	}
	s.mu.Lock()
	ch := s.child
	s.mu.Unlock()
	if ch == nil {
		return http.StatusInternalServerError, errBody(msgNoAction)
	}
	var line bytes.Buffer
	if err := json.Compact(&line, body); err != nil {
		return http.StatusBadRequest, errBody("The request body is not valid JSON: " + err.Error())
	}
	answer, err := ch.roundTrip(ctx, line.Bytes())
	if err != nil {
		// The child is gone, or the caller gave up on it: either way its
		// next answer could not be matched to a run, so it is done.
		s.drop(ch)
	}
	return s.runAnswer(answer, err)
}

// killedForMemory says whether the cgroup's oom_kill counter went up since
// the action's process started or since the last exit it explained, and
// moves the base to the current count.
func (s *Server) killedForMemory() bool {
	after, ok := oomKills(s.cfg.OOMFiles)
	s.mu.Lock()
	defer s.mu.Unlock()
	killed := ok && s.oomCounted && after > s.oomBase
	s.oomBase, s.oomCounted = after, ok
	return killed
}

// runAnswer is the /run response for a run that answered (err nil) or
// failed: the child exited (killed for memory or not) or the run was
// cancelled.
func (s *Server) runAnswer(answer []byte, err error) (int, any) {
	if err != nil {
		if errors.Is(err, errExited) {
			// The container lives on when only the action's process was
			// killed for memory, so say so: the invoker cannot see it.
			if s.killedForMemory() {
				return http.StatusBadGateway, map[string]any{"error": msgExited, "oom": true}
			}
			return http.StatusBadGateway, errBody(msgExited)
		}
		return http.StatusServiceUnavailable, errBody("the run was cancelled: " + err.Error())
	}
	answer = bytes.TrimSpace(answer)
	if len(answer) == 0 || (answer[0] != '{' && answer[0] != '[') || !json.Valid(answer) {
		return http.StatusBadGateway, errBody(msgNotDictOrArr)
	}
	return http.StatusOK, answer
}

// drop kills ch and forgets it: later runs answer "no action defined yet".
func (s *Server) drop(ch *child) {
	ch.kill()
	s.mu.Lock()
	if s.child == ch {
		s.child = nil
	}
	s.mu.Unlock()
}

// Close kills the action's process; later requests fail.
func (s *Server) Close() {
	s.mu.Lock()
	ch, cancelRun, c, il := s.child, s.cancelRun, s.conc, s.inl
	s.child, s.closed = nil, true
	s.mu.Unlock()
	if cancelRun != nil {
		cancelRun()
	}
	if c != nil {
		c.close()
		for _, sl := range c.slots {
			if sl.ch != nil {
				<-sl.ch.exited
			}
		}
	}
	if ch != nil {
		ch.kill()
		<-ch.exited
	}
	if il != nil {
		il.close()
	}
	// The sentinels' own descriptors keep the pipes open: from now on the
	// sentinels go to Stdout and Stderr. Closing a file wakes a sentinel
	// write parked on it (outMu is not taken: that write holds it).
	if sf := s.sent.Swap(nil); sf != nil {
		for _, f := range sf.files {
			f.Close()
		}
	}
}

// childPid is the pid of the running action process, or 0 (for tests).
func (s *Server) childPid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.child == nil {
		return 0
	}
	return s.child.pid()
}
