// Package pgtest starts throwaway PostgreSQL servers for tests.
//
// A Server is a private cluster: initdb in a new temporary directory, then
// the postgres binary listening on a free port of 127.0.0.1 (and on a unix
// socket inside that directory), with durability turned off for speed. It is
// stopped and its directory removed when the test that started it ends.
// Each NewDatabase call creates a fresh, empty database on it, so one server
// can serve many tests. A package whose TestMain runs its tests through Main
// shares one server between all of them (Start and Shared use it), which
// saves an initdb per test:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		url := pgtest.Start(t) // a new database
//		...
//	}
//
// The binaries are looked up in $EDDY_POSTGRES_BIN, then under
// /usr/lib/postgresql/*/bin (Debian's postgresql package; the highest
// version wins), then on $PATH. When they are missing the test is skipped,
// unless EDDY_REQUIRE_POSTGRES=1, which makes it fail instead (for CI,
// where scripts/postgres-deps installs them).
//
// PostgreSQL refuses to run as root. When the tests run as root, the server
// runs as the "postgres" system user (which Debian's package creates), and
// the temporary directory is created outside the test's own temporary
// directory and handed to that user.
//
// The server is a child process of the test binary and gets SIGQUIT
// (immediate shutdown) if the test binary dies, so a killed test run does not
// leave servers behind.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequireEnv is the environment variable that turns "PostgreSQL is not
// installed" from a skip into a failure when set to 1.
const RequireEnv = "EDDY_REQUIRE_POSTGRES"

// BinEnv names a directory holding initdb and postgres, overriding the search.
const BinEnv = "EDDY_POSTGRES_BIN"

// startTimeout bounds initdb plus the server's start.
const startTimeout = 60 * time.Second

// Server is a running throwaway PostgreSQL server.
type Server struct {
	bin  string // directory of initdb and postgres
	cred *syscall.Credential
	dir  string // temporary directory: data/, the socket, server.log
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when the server process has exited
	err  error         // its exit status, set before done is closed
	ndb  atomic.Int64

	shared bool // the process-wide server of Main
}

// errMissing marks "the PostgreSQL binaries are not installed".
var errMissing = errors.New("not installed")

// shared is the process-wide server of Main.
var shared struct {
	sync.Mutex
	enabled bool     // Main runs the tests
	srv     *Server  // started on first use
	err     error    // why it could not start
	cleanup []func() // run by Main after the tests, last first
}

// Main runs the tests of a package (call it from TestMain:
// os.Exit(pgtest.Main(m))) so that Start and Shared use one server for the
// whole test binary, started on first use and stopped, with its files
// removed, when the tests are done. Without Main, each Start starts a server
// of its own, which costs an initdb (a second or more) per test.
func Main(m *testing.M) int {
	shared.Lock()
	shared.enabled = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	defer shared.Unlock()
	for _, f := range slices.Backward(shared.cleanup) {
		f()
	}
	shared.srv, shared.cleanup = nil, nil
	return code
}

// Start returns the URL of a new, empty database, on the shared server
// under Main (the database is dropped when t ends) or on a server of t's own
// otherwise (stopped when t ends).
func Start(t testing.TB) string {
	t.Helper()
	return Shared(t).NewDatabase(t)
}

// Shared returns the process-wide server under Main, starting it on first
// use; without Main it is NewServer(t). Tests must not Stop or Restart a
// shared server: NewServer gives one of their own.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.Lock()
	if !shared.enabled {
		shared.Unlock()
		return NewServer(t)
	}
	defer shared.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = newServer(func(f func()) { shared.cleanup = append(shared.cleanup, f) })
		if shared.srv != nil {
			shared.srv.shared = true
		}
	}
	if shared.err != nil {
		fail(t, shared.err)
	}
	return shared.srv
}

// NewServer starts a server that is stopped, and its files removed, when t
// ends. It skips t (or fails it, with EDDY_REQUIRE_POSTGRES=1) when the
// PostgreSQL binaries cannot be found.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s, err := newServer(t.Cleanup)
	if err != nil {
		fail(t, err)
	}
	return s
}

// fail skips t for missing binaries (unless EDDY_REQUIRE_POSTGRES=1) and
// fails it otherwise.
func fail(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, errMissing) {
		t.Fatalf("pgtest: %v", err)
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("pgtest: %v (%s=1 requires PostgreSQL; run scripts/postgres-deps)", err, RequireEnv)
	}
	t.Skipf("pgtest: %v; skipping (install with scripts/postgres-deps; set %s=1 to fail instead)", err, RequireEnv)
}

// newServer runs initdb in a new temporary directory and starts the
// server; cleanup registers what undoes it.
func newServer(cleanup func(func())) (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	sweep()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", filepath.Join(dir, "data"), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}

	s := &Server{bin: bin, cred: cred, dir: dir}
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		err = s.start(ctx)
		if err == nil {
			break
		}
		// Another process may have taken the port between our probe and
		// the server's bind: try another one.
		if attempt >= 3 || !strings.Contains(err.Error(), "already in use") {
			return nil, err
		}
	}
	cleanup(s.Stop)
	return s, nil
}

// Stop stops the server (a fast shutdown: sessions are ended) and waits for
// it to exit. Its files stay until the test ends, for Restart. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	if s.done == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// Restart stops the server if it runs and starts it again on the same port
// with the same data, as after an outage.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.start(ctx); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
}

// start runs the server on s.port and waits until it accepts connections.
func (s *Server) start(ctx context.Context) error {
	dir := s.dir
	logPath := filepath.Join(dir, "server.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	s.done = make(chan struct{})
	s.cmd = exec.Command(filepath.Join(s.bin, "postgres"),
		"-D", filepath.Join(dir, "data"),
		"-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+dir,
		"-c", "max_connections=300",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "logging_collector=off",
		"-c", "log_min_messages=warning",
	)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}

	// Pdeathsig fires when the thread that started the child exits, not
	// the process: start and wait from one locked thread that lives as
	// long as the server.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := s.cmd.Start(); err != nil {
			s.err = err
			close(s.done)
			started <- err
			return
		}
		started <- nil
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}

	admin := s.URL("postgres")
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, admin)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-s.done:
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited (%v):\n%s", s.err, out)
		case <-ctx.Done():
			s.Stop()
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres did not accept connections in %v (%v):\n%s", startTimeout, err, out)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Port is the TCP port the server listens on (on 127.0.0.1).
func (s *Server) Port() int { return s.port }

// URL returns the URL of database db on the server, as the superuser
// "postgres" over TCP on 127.0.0.1.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// NewDatabase creates a new, empty database and returns its URL. On the
// shared server, the database is dropped when t ends.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	return s.NewDatabaseWith(t, "")
}

// NewDatabaseWith is NewDatabase with options for CREATE DATABASE, such as
// "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'".
func (s *Server) NewDatabaseWith(t testing.TB, options string) string {
	t.Helper()
	name := fmt.Sprintf("eddy_test_%d", s.ndb.Add(1))
	s.Exec(t, `CREATE DATABASE `+name+` `+options)
	if s.shared {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if conn, err := pgx.Connect(ctx, s.URL("postgres")); err == nil {
				_, _ = conn.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
				conn.Close(ctx)
			}
		})
	}
	return s.URL(name)
}

// Exec runs statements on the server's "postgres" database as the
// superuser, failing t on error (for CREATE DATABASE with options, and the
// like).
func (s *Server) Exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Log returns what the server has logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	return string(b)
}

// dirPrefix names the servers' temporary directories; ownerFile in each
// holds the pid of the test process that made it.
const (
	dirPrefix = "eddy-pgtest-"
	ownerFile = "owner.pid"
)

// sweep removes the directories of servers whose test process died without
// cleaning up (killed, or timed out): their servers got SIGQUIT, but their
// files stay.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if alive(pid) {
			continue
		}
		// Leave a server that still runs alone.
		if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if pm, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && alive(pm) {
				continue
			}
		}
		os.RemoveAll(dir)
	}
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// findBin returns the directory holding initdb and postgres.
func findBin() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv(BinEnv); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%s=%s holds no initdb and postgres: %w", BinEnv, dir, errMissing)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Highest major version first: compare numerically.
	slices.SortFunc(dirs, func(a, b string) int {
		return majorOf(b) - majorOf(a)
	})
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("PostgreSQL binaries (initdb, postgres) not found under /usr/lib/postgresql/*/bin or on $PATH: %w", errMissing)
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// credential returns the user to run the server as: nil (ourselves) unless
// we are root, then the "postgres" system user.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses to: no \"postgres\" user to run it as (%v)", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
