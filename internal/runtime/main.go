// Package runtime is Eddy's runtime server: the process inside an action
// container that speaks the OpenWhisk runtime protocol, as OpenWhisk's Go
// actionloop proxy does (POST /init, POST /run, one activation at a time).
//
// POST /init (exactly once) writes the action's code into a work directory
// and starts it as a long-lived "actionloop" child; POST /run writes the run
// message as one JSON line to the child's stdin and answers with the one
// line the child writes on its fd 3. The child inherits the server's stdout
// and stderr; after each /run (and a failed /init, never a successful one,
// as in OpenWhisk's runtimes) the server writes the sentinel line to both,
// so that whoever reads the container's output can split it per
// activation. Launchers say how code becomes a child:
//
//   - "python": Python source or a zip with __main__.py, run by the
//     embedded launcher.py with $EDDY_PYTHON (default python3);
//   - "nodejs": JavaScript source or a zip with package.json "main" or
//     index.js, run by the embedded launcher.js with $EDDY_NODE (default
//     node). The function named by init's "main" (default "main") is taken
//     from the module's exports, or, for plain source, from a top-level
//     declaration; it may return a Promise. The Node.js version is whatever
//     that node is: in the eddy/action-nodejs image it is the one its tag
//     and the manifest's kind name, but on the process backend it is the
//     node found on the host's PATH, whatever kind the action has;
//   - "native": an executable, a zip holding an executable "exec", or a
//     script with a shebang, which must itself speak the actionloop protocol.
//
// Four more launchers run OpenWhisk's other languages with their upstream
// conventions (docs/languages.md): "go" compiles source or a zip at /init
// (or runs a precompiled executable), "php" and "ruby" run main in the
// source, index.php or main.rb, "java" runs
// public static JsonObject main(JsonObject) from a jar (launcher_go.go,
// launcher_scripts.go, launcher_java.go).
//
// The launcher "skeleton" speaks OpenWhisk's dockerskeleton protocol
// instead (/init takes a zip or a script, /run starts it anew), so that an image of Eddy's can stand in for
// openwhisk/dockerskeleton and serve --native actions: /init writes the
// code (a script, or a zip with an executable "exec") and answers "OK";
// every /run starts exec anew with the parameters as its argument and on
// stdin, and the last line of its stdout is the result, the lines before it
// logs. Before /init (or after an /init without code), runs answer as the
// skeleton's stub does.
//
// An /init whose value carries "concurrency": N > 1 (an Eddy extension)
// puts the python, nodejs and native launchers in concurrent mode: up to N
// runs at once, every line of output tagged with its run's activation id,
// and per-run sentinels (concurrent.go).
//
// The server runs Go with one P (GOMAXPROCS=1) unless GOMAXPROCS is set in
// its environment: it only relays between HTTP and the action's pipes, and
// on a machine shared by many runtimes a second P mostly spins looking for
// work. Measured with `eddy bench --kind native` on 2 cores: the direct
// /run floor went from 5,495 to 9,968 calls/s at concurrency 16, the
// machine's CPU per call from 360 to 175 µs (bench/RESULTS.md).
//
// On Linux the /run hot path (the HTTP connection and, in one-at-a-time
// mode, the action's stdin and fd 3 and the sentinels) reads and writes its non-blocking descriptors with
// raw system calls (rawio_linux.go): a syscall through the Go scheduler
// wakes its sysmon thread whenever the process was idle, as a runtime is
// between runs, which cost two wakes of sysmon per run. The sentinels go
// through a second, non-blocking open of the stdout and stderr pipes, so
// that the descriptions the action writes to stay blocking.
//
// The package imports only the standard library: it is built into a small
// static binary (cmd/eddy-runtime) for images, and into eddy as
// "eddy runtime".
package runtime

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"
)

// Main runs the runtime server until SIGTERM or SIGINT and returns the exit
// code. args are the arguments after the program name:
//
//	--listen ADDR     listen address (default ":8080")
//	--launcher NAME   python, nodejs, native, skeleton, go, php, ruby or java
//	                  (default $EDDY_LAUNCHER)
//	--workdir DIR     where the action's files go, in DIR/action (default
//	                  $EDDY_WORKDIR, else a new temporary directory removed
//	                  at exit; the skeleton image sets EDDY_WORKDIR=/ so that
//	                  exec is /action/exec, as in OpenWhisk's dockerskeleton)
//	--ready-fd N      after listening, write the bound address and a newline
//	                  to file descriptor N, then close it
//
// The action's process writes to stdout and stderr directly when they are
// *os.File values.
func Main(args []string, stdout, stderr io.Writer) int {
	if os.Getenv("GOMAXPROCS") == "" {
		goruntime.GOMAXPROCS(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return run(ctx, args, stdout, stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eddy-runtime", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":8080", "listen address")
	launcher := fs.String("launcher", os.Getenv("EDDY_LAUNCHER"), "how code runs: "+strings.Join(Launchers(), ", ")+" (default $EDDY_LAUNCHER)")
	workDir := fs.String("workdir", os.Getenv("EDDY_WORKDIR"), "work directory (default $EDDY_WORKDIR, else a new temporary directory)")
	readyFD := fs.Int("ready-fd", -1, "file descriptor to write the bound address to once listening")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "eddy-runtime: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "eddy-runtime: %v\n", err)
		return 1
	}
	if spec := os.Getenv(RlimitsEnv); spec != "" {
		if err := applyRlimits(spec); err != nil {
			return fail(err)
		}
	}

	dir := *workDir
	if dir == "" {
		d, err := os.MkdirTemp("", "eddy-runtime-")
		if err != nil {
			return fail(err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	srv, err := NewServer(Config{Launcher: *launcher, WorkDir: dir, Env: os.Environ(), Stdout: stdout, Stderr: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "eddy-runtime: %v\n", err)
		return 2
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fail(err)
	}
	if *readyFD >= 0 {
		f := os.NewFile(uintptr(*readyFD), "ready")
		if f == nil {
			ln.Close()
			return fail(fmt.Errorf("--ready-fd %d is not a file descriptor", *readyFD))
		}
		_, err := io.WriteString(f, ln.Addr().String()+"\n")
		f.Close()
		if err != nil {
			ln.Close()
			return fail(fmt.Errorf("write the address to --ready-fd %d: %w", *readyFD, err))
		}
	}

	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(rawListener{ln}) }()
	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			return fail(err)
		}
		return 0
	case <-ctx.Done():
	}
	// Kill the action first: that ends any run in flight, which then
	// answers, so Shutdown has nothing left to wait for.
	srv.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	return 0
}
