package main

// The wiring shared by `eddy standalone` and the role commands (`eddy
// controller|scheduler|invoker`): flags every platform command takes, the
// logger, the container backend, the role constructors from those flags,
// and the runner that starts a process's parts and stops them together.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/eddy-faas/eddy/internal/api"
	"github.com/eddy-faas/eddy/internal/catalog"
	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/container/docker"
	"github.com/eddy-faas/eddy/internal/container/process"
	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/events"
	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/webui"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// tuning holds the settings of the roles that standalone and the role
// commands share; each command registers the ones its roles use.
type tuning struct {
	logLevel                 string
	debugAddr                string
	containerIdle, queueIdle time.Duration
	retention                time.Duration
	leaseTTL                 time.Duration
	nsContainers, perMinute  int
	firesPerMinute           int
	maxConcurrency           int
	followers                int                 // scheduler: followers per leader queue (0 in standalone)
	handOver                 bool                // scheduler: record hand-outs for a successor leader (cluster; not a flag)
	assigner                 scheduler.Assigner  // scheduler: direct partition consumption (cluster's Kafka bus; not a flag)
	handovers                scheduler.Handovers // scheduler: where hand-outs are recorded (standalone's local record; nil: etcd)
	invokerMemory            int64
	prewarm                  string // --prewarm: stem cells, "" for the manifest's
	manifestPath             string
	apiGatewayURL            string        // controller: base URL of APIs created with `wsk api create`
	drainTimeout             time.Duration // controller, invoker: how long SIGTERM waits for accepted activations
	// creds secure the scheduler's gRPC server and every client of it
	// (tls.go); not a flag: the command sets it. Required.
	creds        credentials.TransportCredentials
	metricsAddr  string       // --metrics-addr: serve /metrics there too
	otlpEndpoint string       // --otlp-endpoint: export traces there
	obs          *procMetrics // the process's metrics (metrics.go); nil: none
}

// Which settings a command registers.
const (
	forController = 1 << iota
	forScheduler
	forInvoker
	forAll = forController | forScheduler | forInvoker
)

// register puts the settings that roles use on fs, with the same names,
// defaults and help everywhere.
func (t *tuning) register(fs *flag.FlagSet, roles int) {
	fs.StringVar(&t.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&t.debugAddr, "debug-addr", "", "serve Go profiling endpoints (/debug/pprof/) on this address, e.g. 127.0.0.1:6060 (off when empty)")
	fs.StringVar(&t.metricsAddr, "metrics-addr", "", "serve Prometheus metrics (/metrics) on this address, e.g. 127.0.0.1:9095 (off when empty)")
	fs.StringVar(&t.otlpEndpoint, "otlp-endpoint", "", "export OpenTelemetry traces to this OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318 (off when empty)")
	if roles&forInvoker != 0 {
		fs.DurationVar(&t.containerIdle, "container-idle-timeout", 10*time.Second, "remove a container after this long without work")
		fs.Int64Var(&t.invokerMemory, "invoker-memory", 2048, "MB of memory the invoker hands to containers")
		fs.StringVar(&t.prewarm, "prewarm", "", "prewarm stem cells as kind:memoryMB:count[,...] (e.g. python:3.11:256:1), or 0 for none (default: the runtime manifest's)")
	}
	if roles&forScheduler != 0 {
		fs.DurationVar(&t.queueIdle, "queue-idle-timeout", 30*time.Second, "remove an action's queue after this long without work")
		fs.DurationVar(&t.retention, "queue-retention", 60*time.Second, "fail an activation still queued after this long")
	}
	if roles&(forScheduler|forInvoker) != 0 {
		what := "of the scheduler and the invoker"
		if roles&forAll != forAll {
			what = "of this process"
		}
		fs.DurationVar(&t.leaseTTL, "lease-ttl", 10*time.Second, "etcd lease TTL "+what)
	}
	if roles&(forController|forScheduler) != 0 {
		fs.IntVar(&t.nsContainers, "namespace-containers", 100, "concurrent containers per namespace")
		fs.IntVar(&t.firesPerMinute, "fires-per-minute", 60, "trigger fires per minute per namespace (a scheduler: of the alarms it fires)")
	}
	if roles&(forController|forInvoker) != 0 {
		fs.DurationVar(&t.drainTimeout, "drain-timeout", 20*time.Second, "on SIGTERM, refuse new work and wait this long at most for the activations in flight to finish")
	}
	if roles&forController != 0 {
		fs.IntVar(&t.perMinute, "invocations-per-minute", 1200, "invocations per minute per namespace")
		fs.IntVar(&t.maxConcurrency, "max-action-concurrency", 1, "the largest limits.concurrency an action may have (activations one container runs at once)")
		fs.StringVar(&t.apiGatewayURL, "api-gw-url", "", "base URL of the APIs `wsk api create` makes, e.g. https://api.example.com (default: the scheme and host each request came to)")
	}
	if roles&(forController|forInvoker) != 0 {
		fs.StringVar(&t.manifestPath, "runtimes", "", "runtime manifest file (default: the built-in one)")
	}
}

// logger builds the process's logger on w at the configured level.
func (t *tuning) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(t.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), nil
}

// runtimes loads the runtime manifest (the built-in one by default).
func (t *tuning) runtimes() (*manifest.Manifest, error) {
	if t.manifestPath == "" {
		return manifest.Default(), nil
	}
	return manifest.Load(t.manifestPath)
}

// limits are the system limits with the configured namespace limits.
func (t *tuning) limits() whisk.SystemLimits {
	l := whisk.DefaultSystemLimits()
	l.ConcurrentContainers = t.nsContainers
	l.InvocationsPerMinute = t.perMinute
	l.FiresPerMinute = t.firesPerMinute
	if t.maxConcurrency > 0 {
		l.MaxConcurrency = t.maxConcurrency
	}
	return l
}

// newScheduler builds a scheduler serving gRPC on ln and advertising addr.
func newScheduler(t *tuning, id, addr string, ln net.Listener, b scheduler.Bus, s *cluster.Session,
	c *cluster.Client, st scheduler.Activations, log *slog.Logger) (*scheduler.Scheduler, error) {
	var handovers scheduler.Handovers = s
	if t.handovers != nil {
		handovers = t.handovers
	}
	sched, err := scheduler.New(scheduler.Config{
		ID: id, Addr: addr,
		IdleQueueTimeout: t.queueIdle, NamespaceLimit: t.nsContainers, Retention: t.retention,
		Followers: t.followers, HandOver: t.handOver,
	}, scheduler.Deps{
		Log: log.With("role", "scheduler"), Bus: b, Session: s, Client: c,
		Activations: st, Listener: ln, Now: time.Now, Credentials: t.creds,
		Handovers: handovers, Assigner: t.assigner,
	})
	if err != nil {
		return nil, err
	}
	return sched, t.obs.scheduler(sched, s)
}

// newInvoker builds an invoker whose containers see apiHost as
// __OW_API_HOST; it calls the schedulers of local (by address) directly.
func newInvoker(t *tuning, id, apiHost string, b invoker.Bus, s *cluster.Session, c *cluster.Client,
	backend container.Backend, st store.Store, runtimes *manifest.Manifest, local map[string]invoker.Fetcher,
	log *slog.Logger) (*invoker.Invoker, error) {
	cells, err := invoker.ParseStemCells(t.prewarm, invoker.StemCellsFromManifest(runtimes), runtimes.Resolve)
	if err != nil {
		return nil, fmt.Errorf("--prewarm: %w", err)
	}
	timed := t.obs.backend(backend)
	inv, err := invoker.New(invoker.Config{
		ID: id, UserMemoryMB: t.invokerMemory, IdleTimeout: t.containerIdle, APIHost: apiHost,
		StemCells: cells, ShutdownGrace: t.drainTimeout,
	}, invoker.Deps{
		Log: log.With("role", "invoker"), Bus: b, Session: s, Leaders: c,
		Backend: timed, Actions: st, Runtimes: runtimes, Now: time.Now, Local: local, Tracer: t.obs.tracer("invoker"),
		Credentials: t.creds,
	})
	if err != nil {
		return nil, err
	}
	return inv, t.obs.invoker(inv, s, timed)
}

// apiBus is what the controller and the API need of the bus.
type apiBus interface {
	controller.Bus
	api.Topics
}

// newController builds a controller and the API over it; the HTTP server
// also serves GET /eddy/v1/status from etcd. cat (the process's one
// catalog over st) resolves names through packages and bindings, with
// entitlement, for the API, sequences, conductors and rules alike.
func newController(t *tuning, id string, b apiBus, c *cluster.Client, st store.Store, cat *catalog.Catalog,
	runtimes *manifest.Manifest, draining func() bool, log *slog.Logger, builtins api.Builtins) (*controller.Controller, *http.Server, error) {
	limits := t.limits()
	if t.creds == nil {
		return nil, nil, errors.New("controller: no gRPC credentials")
	}
	observer, err := t.obs.controller()
	if err != nil {
		return nil, nil, err
	}
	ctl, err := controller.New(controller.Config{ID: id, Limits: limits}, controller.Deps{
		Log: log.With("role", "controller"), Bus: b, Cluster: c, Activations: st, Now: time.Now,
		Components: cat, Records: st, DialScheduler: controller.DialGRPCWith(t.creds),
		Observer: observer, Tracer: t.obs.tracer("controller"),
	})
	if err != nil {
		return nil, nil, err
	}
	evs, firer := newEvents(limits, st, events.CatalogActions{Catalog: cat}, ctl, log)
	ui, err := webui.New(webui.Config{}, webui.Deps{Status: c, Activations: st, Now: time.Now})
	if err != nil {
		return nil, nil, err
	}
	build, buildNo := buildInfo(time.Now())
	handler, err := api.New(api.Config{Limits: limits, GatewayURL: t.apiGatewayURL, Build: build, BuildNo: buildNo}, api.Deps{
		Log: log.With("role", "api"), Store: st, Catalog: cat, Invoker: ctl, Runtimes: runtimes, Topics: b,
		Status: c, Events: evs, Firer: firer, APIDocs: api.StoreAPIDocs(st), Now: time.Now,
		Builtins: builtins, Records: st, Draining: draining, UI: ui,
	})
	if err != nil {
		_ = ctl.Close()
		return nil, nil, err
	}
	return ctl, newAPIServer(t.obs.api(handler)), nil
}

// newAPIServer bounds what a client can hold: 10 s for the headers, 5 min
// for a whole request (a 48 MB action on a slow link; longer than any
// blocking wait, since when it passes the request's context ends), and
// 2 min for an idle keep-alive connection.
func newAPIServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
}

// serve runs srv on ln until ctx ends, then shuts it down gracefully.
func serve(srv *http.Server, ln net.Listener) func(context.Context) error {
	return func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			return srv.Shutdown(sctx)
		}
	}
}

// drain is a controller's stop: when sig ends (SIGTERM), the API refuses
// new work (Draining answers true), the activations the controller has in
// flight get up to timeout to finish, so that blocking callers get their
// answers; then stop is called. It returns early when done ends (a part
// failed).
type drain struct{ on atomic.Bool }

func (d *drain) draining() bool { return d.on.Load() }

func (d *drain) run(sig, done context.Context, ctl *controller.Controller, timeout time.Duration, stop func(), log *slog.Logger) {
	select {
	case <-sig.Done():
	case <-done.Done():
		return
	}
	d.on.Store(true)
	n := ctl.InFlight()
	log.Info("draining: new work is refused", "in_flight", n, "timeout", timeout)
	deadline := time.Now().Add(timeout)
	for n > 0 && time.Now().Before(deadline) && done.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		n = ctl.InFlight()
	}
	if n > 0 {
		log.Warn("drain timed out: activations still in flight", "in_flight", n)
	}
	stop()
}

// parts runs the long-lived parts of a process; the first to fail stops
// the rest.
type parts struct {
	ctx    context.Context // ends when the process is asked to stop or a part fails
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
}

func newParts(ctx context.Context) *parts {
	p := &parts{}
	p.ctx, p.cancel = context.WithCancelCause(ctx)
	return p
}

// start runs one part on its own goroutine.
func (p *parts) start(name string, run func(context.Context) error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := run(p.ctx); err != nil && p.ctx.Err() == nil {
			p.cancel(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

// fail stops every part with err as the cause.
func (p *parts) fail(err error) { p.cancel(err) }

// wait blocks until the parts stop, either because parent ended (a clean
// shutdown: nil) or because one failed (its error), and returns once every
// part has returned.
func (p *parts) wait(parent context.Context, log *slog.Logger) error {
	<-p.ctx.Done()
	cause := context.Cause(p.ctx)
	if parent.Err() != nil {
		cause = nil
		log.Info("shutting down")
	}
	p.cancel(nil)
	p.wg.Wait()
	return cause
}

// newBackend picks the container backend of invoker id. auto takes Docker
// when the daemon answers and every runtime image of the manifest is
// present, and the process backend otherwise, saying why. The process
// backend keeps its containers' work dirs under workRoot.
func newBackend(ctx context.Context, kind, id, workRoot string, runtimes *manifest.Manifest, log *slog.Logger) (container.Backend, error) {
	switch kind {
	case "docker":
		return docker.New(ctx, docker.Config{InvokerID: id, Log: log})
	case "process":
		return newProcessBackend(workRoot, log)
	case "auto":
		b, err := docker.New(ctx, docker.Config{InvokerID: id, PingTimeout: 2 * time.Second, Log: log})
		if err != nil {
			log.Info("container backend: process (Docker is not reachable)", "reason", err)
			return newProcessBackend(workRoot, log)
		}
		missing, err := docker.MissingImages(ctx, b.Client(), runtimes.Images())
		if err == nil && len(missing) == 0 {
			log.Info("container backend: docker")
			return b, nil
		}
		_ = b.Close(ctx)
		log.Info("container backend: process (Docker answers, but runtime images are missing: run `eddy runtimes build` or `make runtimes`)",
			"missing", missing, "err", err)
		return newProcessBackend(workRoot, log)
	default:
		return nil, fmt.Errorf("--backend %q: want auto, process or docker", kind)
	}
}

func newProcessBackend(workRoot string, log *slog.Logger) (container.Backend, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locating the eddy binary for the process backend: %w", err)
	}
	root, err := processWorkRoot(workRoot)
	if err != nil {
		return nil, fmt.Errorf("process backend: %w", err)
	}
	return process.New(process.Config{
		Command:     []string{self, "runtime"},
		WorkRoot:    root,
		RemoveStale: true, // the work root is the data dir's: one process at a time
		Log:         log.With("backend", "process"),
	})
}

// identities is what ensureGuest needs of the store.
type identities interface {
	IdentityByUUID(ctx context.Context, uuid string) (whisk.Identity, error)
	PutIdentity(ctx context.Context, id whisk.Identity) error
}

// ensureGuest creates the guest identity if it is missing.
func ensureGuest(ctx context.Context, s identities) error {
	if _, err := s.IdentityByUUID(ctx, whisk.GuestUUID); err == nil {
		return nil
	} else if !whisk.IsKind(err, whisk.NotFound) {
		return fmt.Errorf("reading the guest identity: %w", err)
	}
	err := s.PutIdentity(ctx, whisk.Identity{
		Subject: whisk.GuestNamespace, Namespace: whisk.GuestNamespace,
		UUID: whisk.GuestUUID, Key: whisk.GuestKey,
	})
	if err != nil {
		// Another controller may have created it at the same moment.
		if _, rerr := s.IdentityByUUID(ctx, whisk.GuestUUID); rerr == nil {
			return nil
		}
		return fmt.Errorf("creating the guest identity: %w", err)
	}
	return nil
}

// waitRegistered waits until a scheduler and an invoker are in etcd.
func waitRegistered(ctx context.Context, c *cluster.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		s, err1 := c.Schedulers(ctx)
		i, err2 := c.Invokers(ctx)
		if err1 == nil && err2 == nil && len(s) > 0 && len(i) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("scheduler and invoker did not register in etcd: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
