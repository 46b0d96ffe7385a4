// Package bench is `eddy bench`: it measures Eddy's warm latency,
// throughput, cold start, burst absorption and per-queue cost, each next to
// the floor it cannot beat, measured in the same run on the same machine.
//
// It starts an `eddy standalone` of its own (the eddy binary, on a fresh
// data dir and a free loopback port) or targets a running one (--apihost,
// --auth), deploys its own actions through the REST API (internal/client),
// and runs these scenarios:
//
//   - warm: sequential blocking no-op invocations with result=true. Floor:
//     the same no-op /run POSTed straight to a warm runtime of the same kind,
//     created with the same container.Backend and spoken to with the same
//     container.Client the invoker uses, bypassing Eddy; and a plain Go
//     net/http loopback round trip (L_http).
//   - sequence: a 2-step sequence of the no-op against 2 sequential
//     blocking invocations of it, interleaved: what a sequence step costs
//     beyond a warm invocation through the API.
//   - throughput: blocking no-op invocations at client concurrency 1, 4,
//     16, 64 for a fixed time. Floor: direct /run at the same concurrency on
//     as many warm runtimes as Eddy used, handed out by an ideal pool.
//   - cold: the first invocation of a fresh action (a new name each time),
//     with its parts from the record's timings annotation. Floor: the backend
//     creating the same runtime, then /init and /run, timed without Eddy.
//     Interleaved with it, the same with a prewarm stem cell waiting: fresh
//     actions at the memory of an invoker's stem cells of the kind (the
//     bench's own Eddy keeps one at the benchmark's memory + 1 MB).
//   - burst: N non-blocking invocations of a fresh 100 ms action published
//     at once: time until all completed, peak containers, and the ideal time
//     given the container limit.
//   - stepload: a fresh 10 ms action called at a fixed rate (500/s) from
//     the first instant, open loop: peak containers ÷ the containers the
//     rate needs (rate × the records' mean run time), the over-provisioning
//     of the scaling rule on a step.
//   - many: N actions each invoked a few times: the Eddy process's RSS per
//     queue and its idle CPU (the decision loops) with N queues.
//   - blackbox (Docker backend only, run there by default): an image that
//     behaves as OpenWhisk's actionloop images do (test/fixtures) as a
//     blackbox action, cold and warm, against raw Docker running the same
//     image (create + /init + /run; /run); its warm overhead is compared
//     with the warm scenario's.
//
// The warm and throughput scenarios send their calls, to Eddy's API and to
// the floors' runtimes alike, with the load generator's own client
// (h1Conn): a minimal HTTP/1.1 client with one keep-alive connection per
// worker, the request pre-built and the answer's status and result checked
// with a byte check. The load generator shares the machine's cores with
// what it measures, so its own CPU per call is kept small and the same on
// both sides (through net/http it spent twice as much per call against the
// API as against a runtime); the throughput table reports it.
//
// Every scenario prints a table and writes <out>/<scenario>.json with the
// machine's facts; <out>/bench.json holds them all, <out>/chart.svg draws
// latency percentiles and throughput against the floors, and
// <out>/report.md is the whole run as Markdown. Ratios are computed only
// from numbers of the same run.
//
// Everything runs on loopback (and, on the Docker backend, the local bridge).
package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eddy-faas/eddy/internal/client"
	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/pki"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Scenario names, in the order they run.
var allScenarios = []string{"warm", "sequence", "web", "throughput", "cold", "burst", "stepload", "many"}

// dockerScenarios run after allScenarios, on the Docker backend only (and
// by default there).
var dockerScenarios = []string{"blackbox"}

// extraScenarios run only when named in --only: fairness starts an Eddy of
// its own (issue 17).
var extraScenarios = []string{"fairness"}

// config is everything `eddy bench` can be told.
type config struct {
	eddyPath string
	apiHost  string
	auth     string
	backend  string
	kind     string
	out      string
	quick    bool
	only     []string
	etcd     string
	etcdTLS  pki.Files // client certificate for etcd
	pid      int
	debug    string // host:port of the Eddy's --debug-addr (its Go heap)
	idle     time.Duration
	keep     bool
	started  bool     // bench started the Eddy it measures
	args     []string // as given
	render   string
	cpuProf  string // write this process's CPU profile (the load generator) here

	warmN      int
	warmup     int
	levels     []int
	tputDur    time.Duration
	tputWarm   time.Duration
	coldN      int
	burstN     int
	burstSleep time.Duration
	stepRate   int
	stepDur    time.Duration
	manyN      int
	manyCalls  int
	idleWindow time.Duration
	memoryMB   int64
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := config{args: args}
	fs := flag.NewFlagSet("eddy bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.eddyPath, "eddy", "", "the eddy binary to start (default: this executable)")
	fs.StringVar(&c.apiHost, "apihost", "", "target a running Eddy at this API host instead of starting one")
	fs.StringVar(&c.auth, "auth", whisk.GuestUUID+":"+whisk.GuestKey, "UUID:KEY for --apihost")
	fs.StringVar(&c.backend, "backend", "process", "container backend: process or docker (also of the floors)")
	fs.StringVar(&c.kind, "kind", "python:3.11", "runtime kind of the benchmark actions: "+kinds+" (native builds a static Go no-op with the go tool)")
	fs.StringVar(&c.out, "out", "bench-out", "directory for the JSON files, chart.svg and report.md")
	fs.BoolVar(&c.quick, "quick", false, "run every scenario small (under a minute in all)")
	only := fs.String("only", strings.Join(allScenarios, ","), "scenarios to run, comma-separated")
	fs.StringVar(&c.etcd, "etcd", "", "etcd endpoint of a targeted Eddy (for container counts); found in the data dir when bench starts Eddy")
	fs.StringVar(&c.etcdTLS.CA, "tls-ca", "", "with --etcd https://...: the CA certificate file (and --tls-cert, --tls-key: the client's)")
	fs.StringVar(&c.etcdTLS.Cert, "tls-cert", "", "client certificate file for --etcd")
	fs.StringVar(&c.etcdTLS.Key, "tls-key", "", "client key file for --etcd")
	fs.IntVar(&c.pid, "pid", 0, "pid of a targeted Eddy (for its memory and CPU); known when bench starts Eddy")
	fs.StringVar(&c.debug, "debug-addr", "", "host:port of a targeted Eddy's --debug-addr (for its Go heap); bench gives the Eddy it starts one")
	fs.DurationVar(&c.idle, "container-idle-timeout", 0, "container idle timeout of the started Eddy (default 10s, 2s with --quick)")
	fs.BoolVar(&c.keep, "keep", false, "keep the started Eddy's data dir and output")
	fs.StringVar(&c.render, "render", "", "measure nothing: redraw chart.svg and report.md of this directory from its bench.json")
	fs.StringVar(&c.cpuProf, "cpuprofile", "", "write the CPU profile of bench itself (the load generator) over the whole run to this file")
	warmN := fs.Int("warm-n", 0, "warm invocations measured (default 10000, 300 with --quick)")
	levels := fs.String("levels", "1,4,16,64", "throughput client concurrencies")
	tputDur := fs.Duration("duration", 0, "measured time per throughput level (default 5s, 1s with --quick)")
	coldN := fs.Int("cold-n", 0, "cold starts measured (default 30, 3 with --quick)")
	burstN := fs.Int("burst-n", 0, "burst invocations (default 1000, 30 with --quick)")
	stepRate := fs.Int("step-rate", 0, "calls per second of the step load (default 500, 100 with --quick)")
	stepDur := fs.Duration("step-duration", 0, "how long the step load lasts (default 10s, 2s with --quick)")
	manyN := fs.Int("many-n", 0, "actions of the many-actions scenario (default 1000, 25 with --quick)")
	fs.IntVar(&c.manyCalls, "many-calls", 3, "invocations per action in the many-actions scenario")
	fs.Int64Var(&c.memoryMB, "memory", 128, "memory limit (MB) of the benchmark actions")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch c.backend {
	case "process", "docker":
	default:
		return c, fmt.Errorf("--backend %q: want process or docker", c.backend)
	}
	if _, ok := interpreted[c.kind]; !ok && c.kind != "native" && otherLanguages[c.kind].noop == "" {
		return c, fmt.Errorf("--kind %q: want %s", c.kind, kinds)
	}
	for _, s := range strings.Split(*only, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		known := append(append(slices.Clone(allScenarios), dockerScenarios...), extraScenarios...)
		if !slices.Contains(known, s) {
			return c, fmt.Errorf("--only: unknown scenario %q (have %s)", s, strings.Join(known, ", "))
		}
		c.only = append(c.only, s)
	}
	if c.backend == "docker" && *only == strings.Join(allScenarios, ",") {
		c.only = append(c.only, dockerScenarios...)
	}
	for _, s := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return c, fmt.Errorf("--levels: %q is not a concurrency", s)
		}
		c.levels = append(c.levels, n)
	}
	pick := func(set, full, quick int) int {
		if set > 0 {
			return set
		}
		if c.quick {
			return quick
		}
		return full
	}
	pickD := func(set, full, quick time.Duration) time.Duration {
		if set > 0 {
			return set
		}
		if c.quick {
			return quick
		}
		return full
	}
	c.warmN = pick(*warmN, 10000, 300)
	c.warmup = pick(0, 200, 30)
	c.tputDur = pickD(*tputDur, 5*time.Second, time.Second)
	c.tputWarm = pickD(0, time.Second, 300*time.Millisecond)
	c.coldN = pick(*coldN, 30, 3)
	c.burstN = pick(*burstN, 1000, 30)
	c.burstSleep = 100 * time.Millisecond
	c.stepRate = pick(*stepRate, 500, 100)
	c.stepDur = pickD(*stepDur, 10*time.Second, 2*time.Second)
	c.manyN = pick(*manyN, 1000, 25)
	c.idle = pickD(c.idle, 10*time.Second, 2*time.Second)
	c.idleWindow = pickD(0, 10*time.Second, 2*time.Second)
	if c.manyCalls < 1 {
		c.manyCalls = 1
	}
	return c, nil
}

// Main runs `eddy bench` and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "eddy bench: %v\n", err)
		return 2
	}
	if cfg.render != "" {
		if err := render(cfg.render); err != nil {
			fmt.Fprintf(stderr, "eddy bench: %v\n", err)
			return 1
		}
		return 0
	}
	if cfg.cpuProf != "" {
		stop, err := startCPUProfile(cfg.cpuProf)
		if err != nil {
			fmt.Fprintf(stderr, "eddy bench: %v\n", err)
			return 1
		}
		defer stop()
	}
	if err := run(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "eddy bench: %v\n", err)
		return 1
	}
	return 0
}

// env is what the scenarios share.
type env struct {
	cfg    config
	out    io.Writer
	log    *slog.Logger
	api    *client.Client
	floor  *floor
	eddy   *standalone // nil when targeting a running Eddy
	etcd   *cluster.Client
	pid    int
	runID  string
	code   actionCodes // the benchmark actions of cfg.kind
	limits limits
	// results of earlier scenarios, for later ones (burst uses the cold floor)
	coldFloorP50 time.Duration
	warmOverP50  float64 // the warm scenario's overhead p50, ms (the blackbox scenario compares)
}

// limits are the targeted Eddy's namespace limits.
type limits struct {
	PerMinute  int `json:"invocationsPerMinute"`
	Containers int `json:"concurrentInvocations"`
}

func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	if cfg.eddyPath == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("locating the eddy binary: %w", err)
		}
		cfg.eddyPath = self
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e := &env{cfg: cfg, out: stdout, log: log, runID: strconv.FormatInt(time.Now().UnixMilli()%1e9, 36)}
	code, err := codesFor(ctx, cfg.kind)
	if err != nil {
		return err
	}
	e.code = code

	if cfg.apiHost == "" {
		s, err := startStandalone(ctx, cfg, stderr)
		if err != nil {
			return err
		}
		defer s.stop(stderr)
		e.eddy = s
		cfg.started = true
		cfg.apiHost, e.pid, cfg.debug = s.url, s.pid(), s.debugAddr
		if ep, err := s.etcdEndpoint(); err == nil {
			cfg.etcd = ep
			cfg.etcdTLS = pki.In(filepath.Join(s.dataDir, "tls"), "standalone")
		}
		fmt.Fprintf(stdout, "eddy bench: started %s standalone --backend %s at %s (pid %d)\n", cfg.eddyPath, cfg.backend, s.url, e.pid)
	} else {
		e.pid = cfg.pid
		fmt.Fprintf(stdout, "eddy bench: targeting %s (backend %s, as told by --backend)\n", cfg.apiHost, cfg.backend)
	}
	e.cfg = cfg

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConns = 512
	tr.MaxIdleConnsPerHost = 512
	tr.DisableCompression = true
	api, err := client.New(client.Config{APIHost: cfg.apiHost, Auth: cfg.auth, HTTPClient: &http.Client{Transport: tr}, UserAgent: "eddy-bench"})
	if err != nil {
		return err
	}
	e.api = api
	if err := e.readLimits(ctx); err != nil {
		return err
	}
	if cfg.etcd != "" {
		quiet := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
		var tc *tls.Config
		if !cfg.etcdTLS.Zero() {
			if tc, err = cfg.etcdTLS.Config(); err != nil {
				return fmt.Errorf("etcd %s: %w", cfg.etcd, err)
			}
		}
		ec, err := cluster.DialTLS(ctx, []string{cfg.etcd}, tc, quiet)
		if err != nil {
			return fmt.Errorf("etcd %s: %w", cfg.etcd, err)
		}
		defer ec.Close()
		e.etcd = ec
	}

	fl, err := newFloor(ctx, cfg, log)
	if err != nil {
		return err
	}
	e.floor = fl
	defer fl.close()

	facts := machineFacts(ctx, cfg)
	rep := &report{Machine: facts, Config: cfg.summary(), Started: time.Now().UTC()}
	fmt.Fprintf(stdout, "machine: %s, %d cores, %.1f GiB; %s; backend %s; eddy %s\n\n",
		facts.CPUModel, facts.Cores, float64(facts.MemoryBytes)/(1<<30), facts.GoVersion, facts.Backend, facts.Commit)

	type scen struct {
		name string
		fn   func(context.Context) (any, error)
	}
	scens := []scen{
		{"warm", func(ctx context.Context) (any, error) { return e.warm(ctx) }},
		{"sequence", func(ctx context.Context) (any, error) { return e.sequence(ctx) }},
		{"web", func(ctx context.Context) (any, error) { return e.web(ctx) }},
		{"throughput", func(ctx context.Context) (any, error) { return e.throughput(ctx) }},
		{"cold", func(ctx context.Context) (any, error) { return e.cold(ctx) }},
		{"burst", func(ctx context.Context) (any, error) { return e.burst(ctx) }},
		{"stepload", func(ctx context.Context) (any, error) { return e.stepLoad(ctx) }},
		{"many", func(ctx context.Context) (any, error) { return e.many(ctx) }},
		{"blackbox", func(ctx context.Context) (any, error) { return e.blackbox(ctx) }},
		{"fairness", func(ctx context.Context) (any, error) { return e.fairness(ctx) }},
	}
	var failed []string
	for _, s := range scens {
		if !slices.Contains(cfg.only, s.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.eddy != nil && e.eddy.exited() {
			return fmt.Errorf("eddy exited during the run:\n%s", e.eddy.tail())
		}
		began := time.Now()
		res, err := s.fn(ctx)
		took := time.Since(began)
		if err != nil {
			fmt.Fprintf(stdout, "== %s: FAILED after %s: %v\n\n", s.name, took.Round(time.Millisecond), err)
			failed = append(failed, s.name)
			continue
		}
		rep.add(s.name, res, took)
		if err := writeJSON(filepath.Join(cfg.out, s.name+".json"), scenarioFile{Scenario: s.name, Machine: facts, Config: rep.Config, Seconds: took.Seconds(), Result: res}); err != nil {
			return err
		}
	}
	if err := rep.write(cfg.out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "results in %s (bench.json, <scenario>.json, chart.svg, report.md)\n", cfg.out)
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// startCPUProfile profiles this process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// render redraws dir's chart.svg and report.md from its bench.json.
func render(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err != nil {
		return err
	}
	var r report
	if err := jsonUnmarshal(b, &r); err != nil {
		return err
	}
	return r.write(dir)
}

func (e *env) readLimits(ctx context.Context) error {
	resp, err := e.api.Do(ctx, client.Request{Method: http.MethodGet, Path: "/api/v1/namespaces/_/limits"})
	if err != nil {
		return fmt.Errorf("reading the namespace limits: %w", err)
	}
	return jsonUnmarshal(resp.Body, &e.limits)
}

// summary is the configuration as recorded in the JSON.
func (c config) summary() map[string]any {
	return map[string]any{
		"command": strings.TrimSpace("eddy bench " + strings.Join(c.args, " ")),
		"backend": c.backend, "kind": c.kind, "quick": c.quick, "startedEddy": c.started,
		"warmN": c.warmN, "warmup": c.warmup, "levels": c.levels, "levelSeconds": c.tputDur.Seconds(),
		"coldN": c.coldN, "burstN": c.burstN, "burstSleepMs": c.burstSleep.Milliseconds(),
		"stepRate": c.stepRate, "stepSeconds": c.stepDur.Seconds(), "stepSleepMs": stepSleep.Milliseconds(),
		"manyN": c.manyN, "manyCalls": c.manyCalls, "memoryMB": c.memoryMB,
		"containerIdleSeconds": c.idle.Seconds(), "idleWindowSeconds": c.idleWindow.Seconds(),
		"loadGenClient": loadGenClient,
	}
}
