package main

// The cluster roles, one per process: `eddy controller`, `eddy scheduler`
// and `eddy invoker`, on an etcd cluster, Kafka and PostgreSQL (see
// docs/cluster.md). Each connects to its dependencies at start-up and fails
// at once, naming the one that does not answer; once running, the clients
// reconnect on their own and the lease session re-grants a lost lease, so a
// brief outage of a dependency does not stop the process.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/eddy-faas/eddy/internal/bus/kafka"
	"github.com/eddy-faas/eddy/internal/catalog"
	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/store/cached"
	"github.com/eddy-faas/eddy/internal/store/postgres"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// roleConfig is everything a role command can be told; each role registers
// the flags it uses.
type roleConfig struct {
	tuning
	security              // tls.go
	role                  string
	config                string
	etcd, kafka, postgres string
	kafkaSession          time.Duration
	id                    string

	host  string // controller
	port  int
	guest bool

	listen, advertise string // scheduler

	backend, dataDir, apiHost string // invoker
}

// parseRoleConfig parses the flags (then EDDY_* variables, then --config)
// of role.
func parseRoleConfig(role string, args []string, stderr io.Writer, getenv func(string) string) (roleConfig, error) {
	c := roleConfig{role: role}
	fs := flag.NewFlagSet("eddy "+role, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "config", "", "JSON file of settings (keys are flag names); flags and EDDY_* variables win")
	fs.StringVar(&c.etcd, "etcd", "", "etcd client URLs, comma-separated (required)")
	fs.StringVar(&c.kafka, "kafka", "", "Kafka brokers host:port, comma-separated (required)")
	fs.StringVar(&c.postgres, "postgres", "", "PostgreSQL URL, e.g. postgres://eddy:pw@db:5432/eddy (required)")
	fs.DurationVar(&c.kafkaSession, "kafka-session-timeout", 6*time.Second, "Kafka consumer-group session timeout")
	c.security.registerTLS(fs, true)
	switch role {
	case "controller":
		fs.StringVar(&c.id, "id", "", "controller id, unique among controllers (default: host name and port)")
		fs.StringVar(&c.host, "host", "127.0.0.1", "API listen address")
		fs.IntVar(&c.port, "port", 3233, "API port")
		fs.BoolVar(&c.guest, "guest", true, "create the guest identity (the standalone guest key) if missing")
		c.tuning.register(fs, forController)
	case "scheduler":
		fs.StringVar(&c.id, "id", "", "scheduler id, unique among schedulers (required)")
		fs.StringVar(&c.listen, "listen", "127.0.0.1:0", "gRPC listen address host:port")
		fs.StringVar(&c.advertise, "advertise", "", "gRPC address host:port that controllers and invokers dial (default: the listen address)")
		fs.IntVar(&c.followers, "followers", 1, "follower queues on other schedulers per leader queue")
		c.tuning.register(fs, forScheduler)
	case "invoker":
		fs.StringVar(&c.id, "id", "", "invoker id, unique among invokers (required)")
		fs.StringVar(&c.backend, "backend", "auto", "container backend: auto, process or docker")
		fs.StringVar(&c.dataDir, "data-dir", "", "container work dirs of the process backend (default ~/.eddy/invoker-<id>)")
		fs.StringVar(&c.apiHost, "api-host", "http://127.0.0.1:3233", "API URL given to actions as __OW_API_HOST")
		c.tuning.register(fs, forInvoker)
	}
	if err := parseRole(fs, args, getenv); err != nil {
		return c, err
	}
	var missing []string
	for _, m := range []struct{ name, v string }{{"etcd", c.etcd}, {"kafka", c.kafka}, {"postgres", c.postgres}} {
		if strings.TrimSpace(m.v) == "" {
			missing = append(missing, fmt.Sprintf("--%s (or %s)", m.name, envName(m.name)))
		}
	}
	if role != "controller" && c.id == "" {
		missing = append(missing, "--id (or EDDY_ID)")
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	if c.port < 0 || c.port > 65535 {
		return c, fmt.Errorf("--port %d is not a port", c.port)
	}
	if !isPostgresURL(c.postgres) {
		return c, errors.New("--postgres: want a PostgreSQL URL (postgres://user:password@host:port/db) or key=value connection string; " +
			"SQLite is for `eddy standalone` only: a cluster's processes share one PostgreSQL database")
	}
	if role == "invoker" && c.dataDir == "" {
		home, _ := os.UserHomeDir()
		c.dataDir = filepath.Join(home, ".eddy", "invoker-"+c.id)
	}
	if role == "controller" && c.id == "" {
		host, _ := os.Hostname()
		c.id = fmt.Sprintf("controller-%s-%d", host, c.port)
	}
	return c, nil
}

// isPostgresURL reports whether s looks like a PostgreSQL connection
// string rather than, say, a SQLite file.
func isPostgresURL(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") ||
		strings.Contains(s, "host=") || strings.Contains(s, "dbname=")
}

// deps are a role's connections to the cluster's shared services.
type deps struct {
	etcd  *cluster.Client
	bus   *kafka.Bus
	store *postgres.Store
}

// connect dials etcd, Kafka and PostgreSQL in turn; the first that does
// not answer fails the start-up with an error naming it.
func connect(ctx context.Context, c *roleConfig, log *slog.Logger) (*deps, error) {
	d := &deps{}
	eps := splitList(c.etcd)
	if err := c.security.checkEtcdURLs(eps); err != nil {
		return nil, err
	}
	kcfg := kafka.Config{
		Brokers: splitList(c.kafka), ClientID: "eddy-" + c.role + "-" + c.id,
		Log: log.With("component", "kafka"), SessionTimeout: c.kafkaSession,
	}
	if err := c.security.kafka(&kcfg); err != nil {
		return nil, err
	}
	var err error
	if d.etcd, err = cluster.DialTLS(ctx, eps, c.security.tls, log); err != nil {
		return nil, fmt.Errorf("etcd is unreachable at %s (--etcd): %w", strings.Join(eps, ","), err)
	}
	brokers := kcfg.Brokers
	d.bus, err = kafka.New(ctx, kcfg)
	if err != nil {
		d.close()
		//lint:ignore ST1005 the message starts with a proper noun (Kafka)
		return nil, fmt.Errorf("Kafka is unreachable at %s (--kafka): %w", strings.Join(brokers, ","), err)
	}
	if d.store, err = postgres.Open(ctx, c.postgres, log.With("component", "postgres")); err != nil {
		d.close()
		return nil, fmt.Errorf("PostgreSQL is unreachable (--postgres): %w", err)
	}
	return d, nil
}

func (d *deps) close() {
	if d.store != nil {
		d.store.Close()
	}
	if d.bus != nil {
		d.bus.Close()
	}
	if d.etcd != nil {
		d.etcd.Close()
	}
}

// runRole is `eddy controller|scheduler|invoker`: it runs until ctx ends.
func runRole(ctx context.Context, role string, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := parseRoleConfig(role, args, stderr, getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	log = log.With("id", cfg.id)
	if err := cfg.security.load(); err != nil {
		return err
	}
	cfg.security.warnPlaintext(log)
	cfg.tuning.creds = grpcCredentials(cfg.security.tls)
	stopDebug, err := startDebug(ctx, cfg.debugAddr, log)
	if err != nil {
		return err
	}
	defer stopDebug()
	stopMetrics, err := cfg.startMetrics(ctx, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	switch role {
	case "controller":
		return runController(ctx, &cfg, stdout, log)
	case "scheduler":
		return runScheduler(ctx, &cfg, stdout, log)
	default:
		return runInvoker(ctx, &cfg, stdout, log)
	}
}

func runController(ctx context.Context, cfg *roleConfig, stdout io.Writer, log *slog.Logger) error {
	runtimes, err := cfg.runtimes()
	if err != nil {
		return err
	}
	// Listen first, so a busy port fails before anything starts.
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.host, fmt.Sprint(cfg.port)))
	if err != nil {
		return fmt.Errorf("API listener: %w", err)
	}
	defer ln.Close()
	d, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer d.close()
	if cfg.guest {
		if err := ensureGuest(ctx, d.store); err != nil {
			return err
		}
	}
	// The controller serves every request's identity and action reads
	// from a short-lived cache (writes of other controllers are seen
	// within its TTL; misses are not cached, so an action created
	// elsewhere is found at once). While PostgreSQL is unreachable, what
	// was read in the last controllerStaleIfError is still served, so a
	// brief database outage does not stop invocations of actions in use
	// (the invokers' record writes retry through it). See
	// internal/store/cached and docs/cluster.md.
	st := cfg.obs.records(cached.New(d.store, cached.Config{StaleIfError: controllerStaleIfError, StaleWait: controllerStaleWait}))
	if err := seedAlarms(ctx, st); err != nil {
		return err
	}
	// The alarms providers (in the schedulers) see the feed's writes at
	// their next poll.
	feed := newAlarmsFeed(st, nil, log)
	var dr drain
	ctl, srv, err := newController(&cfg.tuning, cfg.id, d.bus, d.etcd, st, catalog.New(st), runtimes, dr.draining, log, feed)
	if err != nil {
		return err
	}
	// Close ends the running sequences and compositions and writes their
	// records, before the store closes.
	defer func() { _ = ctl.Close() }()
	// SIGTERM drains first (drain); the parts stop after it.
	p := newParts(context.WithoutCancel(ctx))
	go dr.run(ctx, p.ctx, ctl, cfg.drainTimeout, func() { p.cancel(nil) }, log)
	p.start("controller", ctl.Run)
	p.start("api", serve(srv, ln))
	fmt.Fprintf(stdout, "eddy controller %s: API at http://%s\n", cfg.id, ln.Addr())
	if err := p.wait(ctx, log); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// controllerStaleIfError is how long past its TTL a controller serves a
// cached identity or action while PostgreSQL cannot be reached;
// controllerStaleWait how long it waits for PostgreSQL before it does (a
// hung server does not refuse, it does not answer).
const (
	controllerStaleIfError = time.Minute
	controllerStaleWait    = time.Second
)

func runScheduler(ctx context.Context, cfg *roleConfig, stdout io.Writer, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	defer ln.Close()
	addr := cfg.advertise
	if addr == "" {
		tcp := ln.Addr().(*net.TCPAddr)
		if tcp.IP.IsUnspecified() {
			return fmt.Errorf("--listen %s listens on every address: give --advertise host:port for the others to dial", cfg.listen)
		}
		addr = tcp.String()
	}
	d, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer d.close()
	session, err := cluster.NewSession(ctx, d.etcd, cfg.leaseTTL, log.With("lease", "scheduler"))
	if err != nil {
		return fmt.Errorf("etcd lease: %w", err)
	}
	cfg.tuning.handOver = true // other schedulers take its queues over
	cfg.tuning.assigner = d.bus
	sched, err := newScheduler(&cfg.tuning, cfg.id, addr, ln, d.bus, session, d.etcd, cfg.obs.records(d.store), log)
	if err != nil {
		return err
	}
	// The alarms provider of this scheduler fires through a controller of
	// its own (it publishes the rule actions' activations; it serves no
	// API), and owns alarm shards under the scheduler's lease.
	cat := catalog.New(d.store)
	alarmsCtl, err := controller.New(controller.Config{ID: "alarms-" + cfg.id, Limits: schedulerFireLimits(&cfg.tuning)},
		controller.Deps{Log: log.With("role", "alarms-controller"), Bus: d.bus, Cluster: d.etcd, Activations: d.store, Now: time.Now,
			DialScheduler: controller.DialGRPCWith(cfg.creds),
			Components:    cat, Records: d.store})
	if err != nil {
		return err
	}
	defer alarmsCtl.Close()
	alarmsProvider, err := newAlarmsProvider(cfg.id, session, d.store,
		alarmsFirer(schedulerFireLimits(&cfg.tuning), d.store, cat, alarmsCtl, log), nil, log)
	if err != nil {
		return err
	}
	p := newParts(ctx)
	p.start("lease", session.Run)
	p.start("scheduler", sched.Run)
	p.start("alarms controller", alarmsCtl.Run)
	p.start("alarms", alarmsProvider.Run)
	fmt.Fprintf(stdout, "eddy scheduler %s: gRPC at %s\n", cfg.id, addr)
	cause := p.wait(ctx, log)
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = session.Close(closeCtx)
	if cause != nil {
		return cause
	}
	log.Info("stopped")
	return nil
}

func runInvoker(ctx context.Context, cfg *roleConfig, stdout io.Writer, log *slog.Logger) error {
	runtimes, err := cfg.runtimes()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	d, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer d.close()
	backend, err := newBackend(ctx, cfg.backend, cfg.id, cfg.dataDir, runtimes, log)
	if err != nil {
		return err
	}
	warnSharedBackend(ctx, backend, nil, log)
	// On the way out: remove the containers, then revoke the lease.
	var session *cluster.Session
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		defer cancel()
		if err := backend.Close(closeCtx); err != nil {
			log.Warn("removing containers", "err", err)
		}
		if session != nil {
			_ = session.Close(closeCtx)
		}
	}()
	session, err = cluster.NewSession(ctx, d.etcd, cfg.leaseTTL, log.With("lease", "invoker"))
	if err != nil {
		return fmt.Errorf("etcd lease: %w", err)
	}
	inv, err := newInvoker(&cfg.tuning, cfg.id, cfg.apiHost, d.bus, session, d.etcd, backend, cfg.obs.records(d.store), runtimes, nil, log)
	if err != nil {
		return err
	}
	p := newParts(ctx)
	p.start("lease", session.Run)
	p.start("invoker", inv.Run)
	fmt.Fprintf(stdout, "eddy invoker %s: backend %s, %d MB for containers\n", cfg.id, backend.Name(), cfg.invokerMemory)
	if err := p.wait(ctx, log); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// statusFromEtcd reads the cluster status from etcd (`eddy status --etcd`),
// with the client certificate of EDDY_TLS_CA, EDDY_TLS_CERT and
// EDDY_TLS_KEY when they are set.
func statusFromEtcd(ctx context.Context, endpoints []string) (*whisk.ClusterStatus, error) {
	tc, err := tlsFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	c, err := cluster.DialTLS(ctx, endpoints, tc, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	return &st, nil
}
