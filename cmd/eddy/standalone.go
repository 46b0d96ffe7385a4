package main

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
	"path/filepath"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/api"
	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/container/docker"
	"github.com/eddy-faas/eddy/internal/container/process"
	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/eddy-faas/eddy/internal/store/sqlite"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// invokerID names standalone's one invoker; the Docker backend labels its
// containers with it, so a restart finds and removes what a killed run left.
const invokerID = "invoker0"

// standaloneConfig is everything `eddy standalone` can be told.
type standaloneConfig struct {
	host, dataDir, backend, logLevel string
	port                             int
	containerIdle, queueIdle         time.Duration
	retention                        time.Duration
	leaseTTL                         time.Duration
	nsContainers, perMinute          int
	invokerMemory                    int64
	manifestPath                     string
}

func parseStandalone(args []string, stderr io.Writer) (standaloneConfig, error) {
	home, _ := os.UserHomeDir()
	c := standaloneConfig{}
	fs := flag.NewFlagSet("eddy standalone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.port, "port", 3233, "API port")
	fs.StringVar(&c.host, "host", "127.0.0.1", "API listen address")
	fs.StringVar(&c.dataDir, "data-dir", filepath.Join(home, ".eddy", "standalone"), "etcd data, SQLite database and container work dirs")
	fs.StringVar(&c.backend, "backend", "auto", "container backend: auto, process or docker")
	fs.DurationVar(&c.containerIdle, "container-idle-timeout", 10*time.Second, "remove a container after this long without work")
	fs.DurationVar(&c.queueIdle, "queue-idle-timeout", 30*time.Second, "remove an action's queue after this long without work")
	fs.DurationVar(&c.retention, "queue-retention", 60*time.Second, "fail an activation still queued after this long")
	fs.DurationVar(&c.leaseTTL, "lease-ttl", 10*time.Second, "etcd lease TTL of the scheduler and the invoker")
	fs.IntVar(&c.nsContainers, "namespace-containers", 100, "concurrent containers per namespace")
	fs.IntVar(&c.perMinute, "invocations-per-minute", 1200, "invocations per minute per namespace")
	fs.Int64Var(&c.invokerMemory, "invoker-memory", 2048, "MB of memory the invoker hands to containers")
	fs.StringVar(&c.manifestPath, "runtimes", "", "runtime manifest file (default: the built-in one)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.port < 0 || c.port > 65535 {
		return c, fmt.Errorf("--port %d is not a port", c.port)
	}
	return c, nil
}

// standalone runs controller, scheduler and invoker in one process on
// embedded etcd, the in-memory bus and SQLite, until ctx ends.
func standalone(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseStandalone(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	runtimes := manifest.Default()
	if cfg.manifestPath != "" {
		if runtimes, err = manifest.Load(cfg.manifestPath); err != nil {
			return err
		}
	}
	limits := whisk.DefaultSystemLimits()
	limits.ConcurrentContainers = cfg.nsContainers
	limits.InvocationsPerMinute = cfg.perMinute

	// Listen first, so a busy port fails before anything starts.
	apiLn, err := net.Listen("tcp", net.JoinHostPort(cfg.host, fmt.Sprint(cfg.port)))
	if err != nil {
		return fmt.Errorf("API listener: %w", err)
	}
	defer apiLn.Close()
	schedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("scheduler listener: %w", err)
	}
	defer schedLn.Close()

	// etcd, embedded; its client URL is written to the data dir for tools and tests.
	etcdDir := filepath.Join(cfg.dataDir, "etcd")
	etcd, err := cluster.StartEmbedded(ctx, cluster.EmbedConfig{Dir: etcdDir, Log: log})
	if err != nil {
		return fmt.Errorf("embedded etcd: %w", err)
	}
	defer etcd.Close()
	if err := os.WriteFile(filepath.Join(etcdDir, "endpoint"), []byte(etcd.Endpoints()[0]+"\n"), 0o644); err != nil {
		return err
	}
	etcdClient, err := cluster.Dial(ctx, etcd.Endpoints(), log)
	if err != nil {
		return err
	}
	defer etcdClient.Close()

	store, err := sqlite.Open(ctx, filepath.Join(cfg.dataDir, "eddy.db"), log)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer store.Close()
	if err := ensureGuest(ctx, store); err != nil {
		return err
	}

	bus := memory.New(log)
	defer bus.Close()

	backend, err := newBackend(ctx, cfg, runtimes, log)
	if err != nil {
		return err
	}

	// The scheduler and the invoker each hold ONE lease.
	schedSession, err := cluster.NewSession(ctx, etcdClient, cfg.leaseTTL, log.With("lease", "scheduler"))
	if err != nil {
		return err
	}
	invSession, err := cluster.NewSession(ctx, etcdClient, cfg.leaseTTL, log.With("lease", "invoker"))
	if err != nil {
		return err
	}

	sched, err := scheduler.New(scheduler.Config{
		ID: "scheduler0", Addr: schedLn.Addr().String(),
		IdleQueueTimeout: cfg.queueIdle, NamespaceLimit: cfg.nsContainers, Retention: cfg.retention,
	}, scheduler.Deps{
		Log: log.With("role", "scheduler"), Bus: bus, Session: schedSession, Client: etcdClient,
		Activations: store, Listener: schedLn, Now: time.Now,
	})
	if err != nil {
		return err
	}
	inv, err := invoker.New(invoker.Config{
		ID: invokerID, UserMemoryMB: cfg.invokerMemory, IdleTimeout: cfg.containerIdle,
		APIHost: fmt.Sprintf("http://%s", apiLn.Addr()),
	}, invoker.Deps{
		Log: log.With("role", "invoker"), Bus: bus, Session: invSession, Leaders: etcdClient,
		Backend: backend, Actions: store, Runtimes: runtimes, Now: time.Now,
	})
	if err != nil {
		return err
	}
	ctl, err := controller.New(controller.Config{ID: "controller0", Limits: limits}, controller.Deps{
		Log: log.With("role", "controller"), Bus: bus, Cluster: etcdClient, Activations: store, Now: time.Now,
	})
	if err != nil {
		return err
	}
	handler := api.New(api.Config{Limits: limits}, api.Deps{
		Log: log.With("role", "api"), Store: store, Invoker: ctl, Runtimes: runtimes, Topics: bus, Now: time.Now,
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}

	// Run every part; the first to fail stops the rest.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	start := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil && runCtx.Err() == nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		}()
	}
	start("scheduler lease", schedSession.Run)
	start("invoker lease", invSession.Run)
	start("scheduler", sched.Run)
	start("invoker", inv.Run)
	start("controller", ctl.Run)
	// Serve the API once the scheduler and the invoker have registered, so
	// the first request finds them.
	if err := waitRegistered(runCtx, etcdClient); err != nil {
		cancel(err)
	}
	start("api", func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(apiLn) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			return srv.Shutdown(sctx)
		}
	})

	if runCtx.Err() == nil {
		fmt.Fprintf(stdout, "eddy standalone: API at http://%s, guest key %s:%s, backend %s, data in %s\n",
			apiLn.Addr(), whisk.GuestUUID, whisk.GuestKey, backend.Name(), cfg.dataDir)
	}

	<-runCtx.Done()
	cause := context.Cause(runCtx)
	if ctx.Err() != nil {
		cause = nil // asked to stop: a clean shutdown
		log.Info("shutting down")
	}
	cancel(nil)
	wg.Wait()

	closeCtx, closeCancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer closeCancel()
	if err := backend.Close(closeCtx); err != nil {
		log.Warn("removing containers", "err", err)
	}
	_ = invSession.Close(closeCtx)
	_ = schedSession.Close(closeCtx)
	if cause != nil {
		return cause
	}
	log.Info("stopped")
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

// newBackend picks the container backend. auto takes Docker when the
// daemon answers and every runtime image of the manifest is present, and the
// process backend otherwise, saying why.
func newBackend(ctx context.Context, cfg standaloneConfig, runtimes *manifest.Manifest, log *slog.Logger) (container.Backend, error) {
	switch cfg.backend {
	case "docker":
		return docker.New(ctx, docker.Config{InvokerID: invokerID, Log: log})
	case "process":
		return newProcessBackend(cfg, log)
	case "auto":
		b, err := docker.New(ctx, docker.Config{InvokerID: invokerID, PingTimeout: 2 * time.Second, Log: log})
		if err != nil {
			log.Info("container backend: process (Docker is not reachable)", "reason", err)
			return newProcessBackend(cfg, log)
		}
		missing, err := docker.MissingImages(ctx, b.Client(), runtimes.Images())
		if err == nil && len(missing) == 0 {
			log.Info("container backend: docker")
			return b, nil
		}
		_ = b.Close(ctx)
		log.Info("container backend: process (Docker answers, but runtime images are missing: run `eddy runtimes build` or `make runtimes`)",
			"missing", missing, "err", err)
		return newProcessBackend(cfg, log)
	default:
		return nil, fmt.Errorf("--backend %q: want auto, process or docker", cfg.backend)
	}
}

func newProcessBackend(cfg standaloneConfig, log *slog.Logger) (container.Backend, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locating the eddy binary for the process backend: %w", err)
	}
	return process.New(process.Config{
		Command:  []string{self, "runtime"},
		WorkRoot: filepath.Join(cfg.dataDir, "containers"),
		Log:      log.With("backend", "process"),
	})
}

// ensureGuest creates the guest identity of standalone if it is missing.
func ensureGuest(ctx context.Context, s *sqlite.Store) error {
	if _, err := s.IdentityByUUID(ctx, whisk.GuestUUID); err == nil {
		return nil
	} else if !whisk.IsKind(err, whisk.NotFound) {
		return fmt.Errorf("reading the guest identity: %w", err)
	}
	return s.PutIdentity(ctx, whisk.Identity{
		Subject: whisk.GuestNamespace, Namespace: whisk.GuestNamespace,
		UUID: whisk.GuestUUID, Key: whisk.GuestKey,
	})
}
