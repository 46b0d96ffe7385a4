package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/eddy-faas/eddy/internal/alarms"
	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/catalog"
	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/handout"
	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/eddy-faas/eddy/internal/store/cached"
	"github.com/eddy-faas/eddy/internal/store/sqlite"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// invokerID names standalone's one invoker (in etcd and in records); its
// Docker containers are labelled with containerOwner.
const invokerID = "invoker0"

// containerOwner is the owner label of the Docker containers of the
// standalone on dataDir: its invoker id and a hash of the data dir's
// absolute path, so that two standalones on one Docker host (other data
// dirs) never remove each other's containers at start-up nor clash on
// container names, while a restart on the same data dir finds what a
// killed run left. It is written to <data-dir>/container-owner for tools
// and tests.
func containerOwner(dataDir string) (string, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	sum := sha256.Sum256([]byte(abs))
	owner := invokerID + "-" + hex.EncodeToString(sum[:6])
	f := filepath.Join(dataDir, "container-owner")
	if err := os.WriteFile(f, []byte(owner+"\n"), 0o600); err != nil {
		return "", err
	}
	return owner, os.Chmod(f, 0o600) // one an older Eddy wrote was 0644
}

// privateDataDir creates the data dir accessible to its owner only (0700),
// and makes an existing one so: it holds the database (keys, actions'
// code and parameters, activation records), which other users of the host
// have no business reading.
func privateDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	return nil
}

// standaloneConfig is everything `eddy standalone` can be told.
type standaloneConfig struct {
	tuning
	host, dataDir, backend string
	port                   int
	busSync                bool
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
	fs.BoolVar(&c.busSync, "bus-sync", false, "every accepted activation is synced to disk before it is acknowledged (survives a machine crash, not only a process crash; ~1 ms more per invocation)")
	c.tuning.register(fs, forAll)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.prewarm == "" {
		c.prewarm = os.Getenv("EDDY_PREWARM") // as the role commands take it
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
// embedded etcd, the durable embedded bus and SQLite, until ctx ends.
func standalone(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseStandalone(args, stderr)
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
	if err := privateDataDir(cfg.dataDir); err != nil {
		return err
	}
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
	runtimes, err := cfg.runtimes()
	if err != nil {
		return err
	}

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

	// The embedded etcd and the scheduler's gRPC server listen on loopback
	// and accept only clients with the data dir's credentials (tls.go).
	tlsFiles, tlsConfig, err := standaloneTLS(cfg.dataDir)
	if err != nil {
		return err
	}
	cfg.creds = grpcCredentials(tlsConfig)

	// etcd, embedded; its client URL is written to the data dir for tools and tests.
	etcdDir := filepath.Join(cfg.dataDir, "etcd")
	etcd, err := cluster.StartEmbedded(ctx, cluster.EmbedConfig{Dir: etcdDir, Log: log, TLS: &tlsFiles})
	if err != nil {
		return fmt.Errorf("embedded etcd: %w", err)
	}
	defer etcd.Close()
	if err := os.WriteFile(filepath.Join(etcdDir, "endpoint"), []byte(etcd.Endpoints()[0]+"\n"), 0o644); err != nil {
		return err
	}
	etcdClient, err := cluster.DialTLS(ctx, etcd.Endpoints(), tlsConfig, log)
	if err != nil {
		return err
	}
	defer etcdClient.Close()

	// The activation writer waits up to 2 ms to commit records in groups
	// under a steady stream; the cache serves the two reads on every
	// request's path (identity, action). Every role of this process shares
	// the one cached store, so its own writes are seen at once; other
	// processes writing the database (eddy admin) are seen within the
	// cache's TTL. See internal/store/cached.
	db, err := sqlite.OpenWith(ctx, filepath.Join(cfg.dataDir, "eddy.db"), log,
		sqlite.Options{CommitDelay: 2 * time.Millisecond})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer db.Close()
	store := cfg.obs.records(cached.New(db, cached.Config{NegativeTTL: time.Second}))
	if err := ensureGuest(ctx, store); err != nil {
		return err
	}

	// The embedded bus is durable on the data dir: activations accepted
	// before a crash (kill -9 included) are replayed at start.
	msgBus, err := memory.Open(filepath.Join(cfg.dataDir, "bus"), log,
		memory.Options{SyncPublish: cfg.busSync, Track: scheduler.QueueGroup, Wait: whisk.IsActionTopic})
	if err != nil {
		return fmt.Errorf("bus: %w", err)
	}
	defer msgBus.Close()
	// The hand-outs of the scheduler, recorded before each container gets
	// its activation: the ones a kill -9 left are not run again (the bus
	// replays what the scheduler had not committed yet).
	handouts, err := handout.Open(filepath.Join(cfg.dataDir, "handouts.log"), log)
	if err != nil {
		return err
	}
	defer handouts.Close()
	if err := failInterrupted(ctx, interrupted(msgBus.Done(), handouts.Leftovers()), store, log); err != nil {
		return err
	}
	if err := handouts.DropLeftovers(); err != nil {
		return err
	}
	cfg.tuning.handOver, cfg.tuning.handovers = true, handouts

	owner, err := containerOwner(cfg.dataDir)
	if err != nil {
		return err
	}
	backend, err := newBackend(ctx, cfg.backend, owner, cfg.dataDir, runtimes, log)
	if err != nil {
		return err
	}
	warnSharedBackend(ctx, backend, store, log)

	// The scheduler and the invoker each hold ONE lease.
	schedSession, err := cluster.NewSession(ctx, etcdClient, cfg.leaseTTL, log.With("lease", "scheduler"))
	if err != nil {
		return err
	}
	invSession, err := cluster.NewSession(ctx, etcdClient, cfg.leaseTTL, log.With("lease", "invoker"))
	if err != nil {
		return err
	}

	sched, err := newScheduler(&cfg.tuning, "scheduler0", schedLn.Addr().String(), schedLn, msgBus, schedSession, etcdClient, store, log)
	if err != nil {
		return err
	}
	// The invoker fetches from the scheduler of this process by a direct
	// call rather than over gRPC on loopback.
	local := map[string]invoker.Fetcher{schedLn.Addr().String(): rpc.NewLocal(sched)}
	inv, err := newInvoker(&cfg.tuning, invokerID, fmt.Sprintf("http://%s", apiLn.Addr()), msgBus, invSession, etcdClient, backend, store, runtimes, local, log)
	if err != nil {
		return err
	}
	if err := seedAlarms(ctx, store); err != nil {
		return err
	}
	alarmsChanged, tellAlarms := alarms.NewSignal()
	var dr drain
	cat := catalog.New(store) // the process's one catalog
	ctl, srv, err := newController(&cfg.tuning, "controller0", msgBus, etcdClient, store, cat, runtimes, dr.draining, log,
		newAlarmsFeed(store, tellAlarms, log))
	if err != nil {
		return err
	}
	// The alarms provider fires through this process's controller and owns
	// every alarm shard under the scheduler's lease.
	alarmsProvider, err := newAlarmsProvider("scheduler0", schedSession, store,
		alarmsFirer(cfg.tuning.limits(), store, cat, ctl, log), alarmsChanged, log)
	if err != nil {
		return err
	}
	// Close ends the running sequences and compositions and writes their
	// records, before the store closes.
	defer func() { _ = ctl.Close() }()

	// Run every part; the first to fail stops the rest. SIGTERM drains
	// first (drain): what is accepted finishes, up to --drain-timeout;
	// what is still queued then is replayed at the next start.
	p := newParts(context.WithoutCancel(ctx))
	go dr.run(ctx, p.ctx, ctl, cfg.drainTimeout, func() { p.cancel(nil) }, log)
	p.start("scheduler lease", schedSession.Run)
	p.start("invoker lease", invSession.Run)
	p.start("scheduler", sched.Run)
	p.start("invoker", inv.Run)
	p.start("controller", ctl.Run)
	// Serve the API once the scheduler and the invoker have registered, so
	// the first request finds them.
	if err := waitRegistered(p.ctx, etcdClient); err != nil {
		p.fail(err)
	}
	p.start("api", serve(srv, apiLn))
	p.start("alarms", alarmsProvider.Run)
	p.start("replayed queues", func(ctx context.Context) error {
		resumeQueues(ctx, msgBus.Backlog(scheduler.QueueGroup), ctl, log)
		<-ctx.Done()
		return nil
	})

	if p.ctx.Err() == nil {
		fmt.Fprintf(stdout, "eddy standalone: API at http://%s, guest key %s:%s, backend %s, data in %s\n",
			apiLn.Addr(), whisk.GuestUUID, whisk.GuestKey, backend.Name(), cfg.dataDir)
	}

	cause := p.wait(ctx, log)

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

// resumeQueues asks for the queue of every action whose topic holds
// activations no queue has taken (the durable bus replayed them at start,
// or they were published while a queue was being made): nothing else
// would, until the action is invoked again. It retries while no scheduler
// answers.
func resumeQueues(ctx context.Context, backlog []bus.Record, ctl *controller.Controller, log *slog.Logger) {
	for _, r := range backlog {
		var msg whisk.ActivationMessage
		if err := whisk.DecodeActivationMessage(r.Value, &msg); err != nil || msg.Action.Name == "" ||
			r.Topic != whisk.ActionTopic(msg.Action.FQN()) {
			continue // not an action's topic
		}
		for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
			err := ctl.EnsureQueue(ctx, msg.Action)
			if err == nil {
				log.Info("resuming replayed activations", "action", msg.Action.FQN().String(), "from", r.Offset)
				break
			}
			log.Warn("queue for replayed activations", "action", msg.Action.FQN().String(), "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
		}
	}
}

// recordStore is what failInterrupted needs of the store.
type recordStore interface {
	GetActivation(ctx context.Context, namespace string, id whisk.ActivationID) (whisk.Activation, error)
	PutActivation(ctx context.Context, a whisk.Activation) error
}

// interrupted are the activations a queue had handed to a container
// before the process stopped: those the queues committed, which the
// durable bus remembers (memory.Options.Track; a queue commits an
// activation once it handed it out), and those handed out since the last
// commit, which the hand-out record kept.
func interrupted(committed []bus.Record, left []handout.Leftover) []whisk.ActivationMessage {
	var out []whisk.ActivationMessage
	for _, r := range committed {
		var msg whisk.ActivationMessage
		if err := whisk.DecodeActivationMessage(r.Value, &msg); err != nil || msg.Action.Name == "" {
			continue
		}
		out = append(out, msg)
	}
	for _, lo := range left {
		out = append(out, lo.Handout.Message)
	}
	return out
}

// failInterrupted gives an error record to every interrupted activation
// that has no record: it ran in a container that stopped with the process
// (or its record was still being written), and nothing else would ever
// record it; the bus's replay of it is then skipped (a queue skips what
// has a record). Activations not yet handed out are replayed and run.
func failInterrupted(ctx context.Context, handed []whisk.ActivationMessage, st recordStore, log *slog.Logger) error {
	now := time.Now()
	failed := 0
	for _, msg := range handed {
		_, err := st.GetActivation(ctx, msg.RecordNamespace(), msg.ActivationID)
		if err == nil {
			continue
		}
		if !whisk.IsKind(err, whisk.NotFound) {
			return fmt.Errorf("checking the records of interrupted activations: %w", err)
		}
		a := whisk.RecordOf(&msg, msg.Action)
		a.Start, a.End = now.UnixMilli(), now.UnixMilli()
		a.StatusCode = whisk.StatusWhiskError
		a.Response = whisk.ErrorResponse(whisk.StatusWhiskError, whisk.MsgInvokerLost)
		a.Logs = []string{}
		a.Annotate(msg.Action, whisk.Timings{Queued: now.UnixMilli() - msg.Published}, false)
		if err := st.PutActivation(ctx, a); err != nil {
			return fmt.Errorf("recording an interrupted activation: %w", err)
		}
		failed++
	}
	if failed > 0 {
		log.Warn("activations interrupted by the last stop got error records", "count", failed)
	}
	return nil
}
