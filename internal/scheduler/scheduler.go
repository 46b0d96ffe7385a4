package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/lograte"
	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Consumer groups of the scheduler's subscriptions.
const (
	QueueGroup = "queue"     // the leader queue's group on an action topic
	AckGroup   = "scheduler" // the group on the scheduler's creation-ack topic
)

// DefaultCreationTimeout is how long a creation may go unacknowledged.
const DefaultCreationTimeout = 20 * time.Second

// Config configures a scheduler; zero durations take the defaults of
// internal/queue and DefaultCreationTimeout.
type Config struct {
	ID               string // unique among schedulers
	Addr             string // advertised gRPC host:port (leader keys, creation messages)
	Tick             time.Duration
	Park             time.Duration
	Retention        time.Duration
	IdleQueueTimeout time.Duration
	CreationTimeout  time.Duration
	NamespaceLimit   int // concurrent containers per namespace when messages carry none
	// Followers is how many other schedulers follow each leader queue of
	// this scheduler's (0 in standalone, 1 in a cluster; docs/cluster.md). A
	// follower holds no activations; it watches the leader key and elects
	// itself when the key vanishes with its leader's lease.
	Followers int
	// HandOver records every hand-out of its leader queues in etcd
	// (Deps.Handovers), so that a successor leader neither runs an
	// activation twice nor forgets one in flight, and fences a queue whose
	// leadership ended (docs/internals.md, "In-flight hand-over"). On in a
	// cluster; off in standalone, where no other scheduler takes over.
	HandOver bool
}

// Bus is what the scheduler needs of the message bus (bus.Bus has it).
type Bus interface {
	Subscribe(ctx context.Context, topic, group string) (bus.Consumer, error)
	Publish(ctx context.Context, topic string, value []byte) error
	EnsureTopic(ctx context.Context, topic string) error
}

// Session is what the scheduler needs of its etcd lease session
// (*cluster.Session has it).
type Session interface {
	RegisterScheduler(ctx context.Context, info whisk.SchedulerInfo) error
	ElectLeader(ctx context.Context, f whisk.FQN, info whisk.LeaderInfo) (won bool, current whisk.LeaderInfo, err error)
	ResignLeader(ctx context.Context, f whisk.FQN) error
	// PutCreation writes a creation key; with countedAt (CountUsed's at)
	// only if no other creation of the namespace was admitted since
	// (admitted false otherwise: count again).
	PutCreation(ctx context.Context, info whisk.CreationInfo, countedAt int64) (admitted bool, err error)
	DeleteCreation(ctx context.Context, info whisk.CreationInfo) error
	OnRegrant(fn func(ctx context.Context))
	// RegisterFollower and DeregisterFollower write and remove this
	// scheduler's follower key of an action.
	RegisterFollower(ctx context.Context, f whisk.FQN, info whisk.LeaderInfo) error
	DeregisterFollower(ctx context.Context, f whisk.FQN, schedulerID string) error
	// RetireQueue deletes the leader key (if this scheduler's) together
	// with the follower keys: the followers stop instead of taking over.
	RetireQueue(ctx context.Context, f whisk.FQN) error
	// PutDemand and DeleteDemand publish and withdraw an action's demand
	// for a share of its namespace (under this scheduler's lease).
	PutDemand(ctx context.Context, f whisk.FQN, schedulerID string) error
	DeleteDemand(ctx context.Context, f whisk.FQN) error
}

// Client is what the scheduler reads from etcd (*cluster.Client has it).
type Client interface {
	Leader(ctx context.Context, f whisk.FQN) (whisk.LeaderInfo, bool, error)
	Invokers(ctx context.Context) ([]whisk.InvokerInfo, error)
	CountContainers(ctx context.Context, f whisk.FQN, rev int64) (int, error)
	CountNamespace(ctx context.Context, ns string) (containers, creations int, err error)
	// Schedulers and Followers are read to recruit followers (fewest
	// queues first).
	Schedulers(ctx context.Context) ([]whisk.SchedulerInfo, error)
	Followers(ctx context.Context, f whisk.FQN) ([]whisk.LeaderInfo, error)
	// LeadersOf lists the actions whose leader key names this scheduler
	// (the reconciler adopts those without a local queue).
	LeadersOf(ctx context.Context, schedulerID string) ([]whisk.FQN, error)
	// WatchLeader reports f's leader key: its state first, then every
	// change, resuming from the last revision seen; retired says the key
	// was deleted together with the follower keys (RetireQueue).
	WatchLeader(ctx context.Context, f whisk.FQN, fn func(li whisk.LeaderInfo, present, retired bool)) error
	// CountUsed counts what a namespace and an action use against their
	// limits (containers + creations): the creator admits a creation only
	// on a fresh count under them.
	CountUsed(ctx context.Context, f whisk.FQN, rev int64) (ns, action int, at int64, err error)
	// NamespaceShare and HasDemand read how the namespace's containers are
	// shared between its actions (internal/queue, Share).
	NamespaceShare(ctx context.Context, ns string) (held map[string]int, wanting map[string]bool, err error)
	HasDemand(ctx context.Context, ns string) (bool, error)
	ContainerWatcher
}

// Activations stores the records the scheduler makes (failed activations)
// and reads records (Records).
type Activations interface {
	PutActivation(ctx context.Context, a whisk.Activation) error
	Records
}

// Records reads activation records (store.Store has it): a new leader
// skips activations that already have a record, which a predecessor handed
// out without committing them. GetActivation must fail with kind NotFound
// for a missing record.
type Records interface {
	GetActivation(ctx context.Context, namespace string, id whisk.ActivationID) (whisk.Activation, error)
}

// ContainerWatcher reports the deletions of container keys, which live
// under their invoker's lease (*cluster.Client has it): the scheduler
// notices containers lost with their invoker.
type ContainerWatcher interface {
	WatchContainerDeletes(ctx context.Context, fn func(whisk.ContainerInfo)) error
}

// Deps are the scheduler's collaborators; each interface names every
// capability the scheduler uses of it. Log and Now are optional (a
// discarding logger, time.Now); the others are required.
type Deps struct {
	Log         *slog.Logger
	Bus         Bus
	Session     Session     // this scheduler's keys under its lease
	Client      Client      // etcd reads: leaders, counts, the share, container deletions
	Activations Activations // the records the queues make and read (duplicates)
	Now         func() time.Time
	Listener    net.Listener // Run serves gRPC on it and stops it on exit
	// Credentials secure the gRPC server and the calls to other
	// schedulers (followers): credentials.NewTLS of a pki.Files.Config
	// for mutual TLS, insecure.NewCredentials() for plaintext.
	Credentials credentials.TransportCredentials
	Handovers   Handovers // required with Config.HandOver
	// Assigner, if set with Config.HandOver, is how leader queues consume
	// their action's topic: directly, outside any consumer group, so a
	// successor reads at once instead of waiting for the dead leader's
	// group session to expire (fencing by epoch keeps two leaders apart).
	Assigner Assigner
}

// Assigner opens a consumer of a topic's partition that is no group member
// and commits for group (*kafka.Bus has it).
type Assigner interface {
	Assign(ctx context.Context, topic, group string) (bus.Consumer, error)
}

// Scheduler hosts leader queues and serves rpc.Scheduler.
type Scheduler struct {
	cfg      Config
	d        Deps
	log      *slog.Logger
	me       whisk.LeaderInfo
	creator  *creator
	warn     *lograte.Limiter // warnings that floods repeat (creations, queues), once per interval
	invokers invokerCache     // the invokers' registrations, shared by the queues' counts

	mu       sync.RWMutex
	runCtx   context.Context // set while Run accepts queues
	stopping bool
	queues   map[whisk.FQN]*entry
	follows  map[whisk.FQN]*follower // actions this scheduler follows
	active   int                     // queues started and not yet gone
	wg       sync.WaitGroup          // queue owners, followers, recruiters and creation jobs

	topics  sync.Map           // topics ensured by this process
	demands demandCache        // the namespaces' demand reads, shared by their queues
	changed chan struct{}      // the queue count changed
	regrant chan chan struct{} // the session re-granted its lease: re-elect, then close the channel
	stats   schedStats         // counters behind Stats (stats.go)
}

var _ rpc.Scheduler = (*Scheduler)(nil)

// New validates cfg and deps.
func New(cfg Config, deps Deps) (*Scheduler, error) {
	switch {
	case cfg.ID == "" || cfg.Addr == "":
		return nil, errors.New("scheduler: ID and Addr are required")
	case deps.Bus == nil || deps.Session == nil || deps.Client == nil || deps.Activations == nil || deps.Listener == nil ||
		deps.Credentials == nil:
		return nil, errors.New("scheduler: Bus, Session, Client, Activations, Listener and Credentials are required")
	}
	if cfg.HandOver && deps.Handovers == nil {
		return nil, errors.New("scheduler: HandOver needs Handovers")
	}
	if cfg.CreationTimeout <= 0 {
		cfg.CreationTimeout = DefaultCreationTimeout
	}
	if cfg.NamespaceLimit <= 0 {
		cfg.NamespaceLimit = whisk.DefaultSystemLimits().ConcurrentContainers
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if cfg.Followers < 0 {
		cfg.Followers = 0
	}
	s := &Scheduler{
		cfg: cfg, d: deps, log: deps.Log.With("scheduler", cfg.ID),
		me:      whisk.LeaderInfo{SchedulerID: cfg.ID, Addr: cfg.Addr},
		queues:  map[whisk.FQN]*entry{},
		follows: map[whisk.FQN]*follower{},
		changed: make(chan struct{}, 1),
		regrant: make(chan chan struct{}),
		warn:    lograte.New(0, deps.Now),
	}
	s.creator = newCreator(s)
	return s, nil
}

// Run registers the scheduler, serves gRPC and hosts queues until ctx
// ends; then it stops every queue (each commits what it handed out and
// resigns its leader key), stops the gRPC server, and returns once every
// goroutine it started has ended.
func (s *Scheduler) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ackTopic := whisk.CreationAckTopic(s.cfg.ID)
	if err := s.d.Bus.EnsureTopic(ctx, ackTopic); err != nil {
		return fmt.Errorf("scheduler: ack topic: %w", err)
	}
	subscribeAcks := func(ctx context.Context) (bus.Consumer, error) { return s.d.Bus.Subscribe(ctx, ackTopic, AckGroup) }
	acks, err := subscribeAcks(ctx)
	if err != nil {
		return fmt.Errorf("scheduler: ack topic: %w", err)
	}
	ackOwner := false // consumeAcks closes the consumer once it runs
	defer func() {
		if !ackOwner {
			acks.Close()
		}
	}()
	if err := s.d.Session.RegisterScheduler(ctx, s.info(0)); err != nil {
		return fmt.Errorf("scheduler: register: %w", err)
	}
	s.mu.Lock()
	if s.runCtx != nil || s.stopping {
		s.mu.Unlock()
		return errors.New("scheduler: Run called twice")
	}
	s.runCtx = ctx
	s.mu.Unlock()
	s.d.Session.OnRegrant(s.onRegrant)

	// A panic in a handler is an Internal status and a log line, not the
	// end of the process.
	srv := grpc.NewServer(append(rpc.ServerOptions(), grpc.Creds(s.d.Credentials),
		grpc.ChainUnaryInterceptor(rpc.Recover(s.log)))...)
	rpc.Register(srv, s)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(s.d.Listener) }()
	var bg sync.WaitGroup
	bg.Add(4)
	go func() { defer bg.Done(); s.watchContainers(ctx) }()
	ackOwner = true
	go func() { defer bg.Done(); s.creator.consumeAcks(ctx, acks, subscribeAcks) }()
	go func() { defer bg.Done(); s.publishLoad(ctx) }()
	go func() { defer bg.Done(); s.reconcileLoop(ctx) }()
	s.log.Info("scheduler running", "addr", s.cfg.Addr)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("scheduler: gRPC server: %w", err)
		serveErr <- nil
	}
	cancel()

	// Queues see ctx end: they answer parked fetches, commit what was
	// handed, close their consumers; their owners resign the leader keys.
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.wg.Wait()

	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		srv.Stop()
		<-stopped
	}
	<-serveErr
	bg.Wait()
	s.log.Info("scheduler stopped")
	return runErr
}

func (s *Scheduler) info(queues int) whisk.SchedulerInfo {
	return whisk.SchedulerInfo{ID: s.cfg.ID, Addr: s.cfg.Addr, Queues: queues}
}

func (s *Scheduler) loadChanged() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// publishLoad keeps SchedulerInfo.Queues in etcd equal to the number of
// queues hosted here (controllers pick the scheduler with the fewest).
func (s *Scheduler) publishLoad(ctx context.Context) {
	last := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
		}
		s.mu.RLock()
		n := s.active
		s.mu.RUnlock()
		if n == last {
			continue
		}
		if err := s.d.Session.RegisterScheduler(ctx, s.info(n)); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("scheduler: updating the queue count", "err", err)
			if retry.Sleep(ctx, time.Second) {
				s.loadChanged()
			}
			continue
		}
		last = n
	}
}

// ensure creates topic once per process.
func (s *Scheduler) ensure(ctx context.Context, topic string) error {
	if _, ok := s.topics.Load(topic); ok {
		return nil
	}
	if err := s.d.Bus.EnsureTopic(ctx, topic); err != nil {
		return err
	}
	s.topics.Store(topic, true)
	return nil
}

// fail stores a record the scheduler made and completes it to the
// controller that waits for it. A controller whose topic is gone is not
// waiting: the stored record is enough.
//
// The store keeps the first record of an activation: when one was there
// already (an invoker's, written between the queue's check and this
// write), the completion carries the stored record, so the caller is told
// what the store says.
func (s *Scheduler) fail(ctx context.Context, msg whisk.ActivationMessage, rec whisk.Activation) error {
	if err := s.d.Activations.PutActivation(ctx, rec); err != nil {
		return err
	}
	if msg.ControllerID == "" {
		return nil
	}
	if stored, err := s.d.Activations.GetActivation(ctx, rec.Namespace, rec.ActivationID); err == nil {
		rec = stored
	}
	comp := whisk.Completion{Activation: rec}
	b, err := comp.AppendJSON(nil)
	if err != nil {
		return err
	}
	err = s.d.Bus.Publish(ctx, whisk.CompletionTopic(msg.ControllerID), b)
	if whisk.IsKind(err, whisk.NotFound) {
		s.log.Warn("scheduler: no completion topic; record stored only", "controller", msg.ControllerID, "activation", rec.ActivationID)
		return nil
	}
	return err
}
