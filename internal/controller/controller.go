// Package controller is the invoke path of an Eddy controller: entitlement
// (the per-namespace per-minute rate), minting the activation id, building
// the whisk.ActivationMessage, making sure the action has a leader queue
// (asking the least-loaded scheduler to create one, without waiting for it),
// publishing to the action's topic, and waiting for the completion of
// blocking invocations.
//
// Run keeps two things current: the leader cache, filled from
// Cluster.WatchLeaders (so the warm path makes no etcd call), and the
// waiters of blocking invocations, resolved from the controller's completion
// topic. When a leader key vanishes while this controller has activations of
// the action in flight, the controller asks for a new queue at once, so the
// activations waiting in the topic are not stranded (OpenWhisk's FPC balancer
// does the same).
//
// A queue creation (createQueue) runs until the action has a leader in the
// cache or this controller no longer has unexpired activations of the action
// in flight: a pass that no scheduler answers is retried with backoff. Every
// creation of an action is one *creation in c.creating, and a leader
// deletion seen while it runs bumps its generation, so a leader read before
// the deletion is never cached after it.
package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Config configures a controller.
type Config struct {
	// ID names the controller; its completions arrive on
	// whisk.CompletionTopic(ID).
	ID string
	// BlockingWait is the longest a blocking invocation waits for its
	// completion (default and maximum 60 s).
	BlockingWait time.Duration
	// Limits are the system limits; InvocationsPerMinute is the default
	// per-namespace rate and ConcurrentContainers the default namespace
	// container limit passed to the queue.
	Limits whisk.SystemLimits
}

// MaxBlockingWait is the upper bound of Config.BlockingWait and of a
// request's wait (OpenWhisk's max-wait-for-blocking-activation).
const MaxBlockingWait = 60 * time.Second

// Bus is what the controller needs of the message bus (bus.Bus has it).
type Bus interface {
	EnsureTopic(ctx context.Context, topic string) error
	Publish(ctx context.Context, topic string, value []byte) error
	Subscribe(ctx context.Context, topic, group string) (bus.Consumer, error)
}

// Cluster is what the controller needs of etcd (*cluster.Client has it).
type Cluster interface {
	Leader(ctx context.Context, action whisk.FQN) (whisk.LeaderInfo, bool, error)
	Schedulers(ctx context.Context) ([]whisk.SchedulerInfo, error)
	WatchLeaders(ctx context.Context, fn func(whisk.FQN, whisk.LeaderInfo, bool)) error
}

// QueueCreator asks one scheduler to host an action's queue (*rpc.Client
// over a connection of its own has it, from DialGRPC).
type QueueCreator interface {
	CreateQueue(ctx context.Context, req *rpc.CreateQueueRequest) (*rpc.CreateQueueResponse, error)
	// Close releases the connection (Controller.Close calls it).
	Close() error
}

// Activations reads activation records (store.Store has it); a blocking
// invocation whose completion did not arrive in time checks it once.
type Activations interface {
	GetActivation(ctx context.Context, namespace string, id whisk.ActivationID) (whisk.Activation, error)
}

// Deps are the controller's collaborators.
type Deps struct {
	Log         *slog.Logger // nil: discard
	Bus         Bus
	Cluster     Cluster
	Activations Activations
	// DialScheduler connects to a scheduler's gRPC address. The controller
	// calls it once per address and keeps the result. Nil: DialGRPC.
	DialScheduler func(addr string) (QueueCreator, error)
	Now           func() time.Time // nil: time.Now
	// Components resolves the actions sequences and conductor actions
	// name, and Records stores the records of sequences and compositions
	// (sequence.go). Both are required.
	Components Components
	Records    Records
	// Observer is told of publications, throttles and blocking waits
	// (observe.go); nil: nothing is told.
	Observer Observer
	// Tracer makes a span of each invocation (trace.go); nil: no spans
	// (a caller's traceparent is still passed on).
	Tracer trace.Tracer
}

// Request is one invocation, authenticated by the API, of an action it read
// from the store.
type Request struct {
	TransactionID string
	Identity      whisk.Identity
	// Action is the action to run, with its parameters merged package <
	// binding < action (catalog.Catalog.Action). It may belong to another
	// namespace (a shared package's): the activation is the caller's.
	Action whisk.Action
	// Binding is "ns/binding" when the action was reached through a
	// binding (the record's binding annotation), else "".
	Binding string
	// Params is the invoke body: a JSON object or empty.
	Params   json.RawMessage
	Blocking bool
	// ResultOnly says a blocking caller takes only the result
	// (?result=true): its completion may come before the logs are read
	// (whisk.ActivationMessage.ResultOnly).
	ResultOnly bool
	// Wait is how long a blocking invocation waits for its completion;
	// zero or more than Config.BlockingWait means Config.BlockingWait.
	Wait time.Duration
	// ActivationID, if set, is the activation's id instead of a new one:
	// the caller may invoke again with the same id (a re-fired alarm tick,
	// docs/alarms.md). The message is marked Repeat, so a queue runs one
	// id at most once. Sequences and compositions take it as their own
	// id, but their steps get new ones.
	ActivationID whisk.ActivationID
	// TraceParent is the request's W3C traceparent header ("" for none):
	// the invocation continues that trace (trace.go).
	TraceParent string
}

// activationID is req's activation id: the one it names, or a new one.
func (req *Request) activationID() whisk.ActivationID {
	if req.ActivationID != "" {
		return req.ActivationID
	}
	return whisk.NewActivationID()
}

// Result is the outcome of Invoke. Activation is set only when a blocking
// invocation finished within its wait.
type Result struct {
	ActivationID whisk.ActivationID
	Activation   *whisk.Activation
}

// createAttempts bounds how many schedulers one queue creation tries
// (OpenWhisk retries up to 5 times on other schedulers).
const createAttempts = 5

// createTimeout bounds one CreateQueue call (OpenWhisk's ask timeout is 8 s).
const createTimeout = 8 * time.Second

// Backoff between queue creation passes that no scheduler answered: it
// starts at retryMin and doubles up to retryMax.
const (
	retryMin = 500 * time.Millisecond
	retryMax = 10 * time.Second
)

// Controller is the invoke path of one controller process.
type Controller struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	now  func() time.Time
	dial func(addr string) (QueueCreator, error)

	bg     context.Context // lives until Close; parents background work
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines (queue creations)

	topics sync.Map // topic → struct{}: topics ensured by this process

	connMu sync.Mutex
	conns  map[string]QueueCreator // scheduler address → client

	retryMin, retryMax time.Duration // backoff between creation passes
	stepGrace          time.Duration // a chain step waits its time limit + this (sequence.go)

	mu       sync.Mutex
	rates    map[string]*rateWindow         // namespace → this minute's count
	leaders  map[whisk.FQN]whisk.LeaderInfo // the leader cache
	creating map[whisk.FQN]*creation        // a queue creation is running
	waiters  map[whisk.ActivationID]chan whisk.Activation
	flights  map[whisk.ActivationID]flight // published, not completed
	byAction map[whisk.FQN]*actionFlights  // in-flight count per action
	closed   bool
}

// creation is one running queue creation of an action (createQueue).
type creation struct {
	// gen counts the leader deletions of the action seen while the
	// creation runs; c.mu guards it. A leader read (etcd or a CreateQueue
	// answer) is cached only if gen did not change since before the read.
	gen uint64
}

// flight is one published activation awaiting its completion.
type flight struct {
	fqn     whisk.FQN
	expires time.Time
}

// actionFlights counts an action's activations in flight and keeps the
// latest metadata, to recreate its queue if the leader vanishes.
type actionFlights struct {
	meta    whisk.ActionMeta
	n       int
	expires time.Time // the latest expiry of the action's flights so far
}

// New validates the configuration and builds a controller.
func New(cfg Config, deps Deps) (*Controller, error) {
	if cfg.ID == "" {
		return nil, errors.New("controller: Config.ID is required")
	}
	if deps.Bus == nil || deps.Cluster == nil || deps.Activations == nil || deps.Components == nil || deps.Records == nil {
		return nil, errors.New("controller: Deps.Bus, Cluster, Activations, Components and Records are required")
	}
	if cfg.BlockingWait <= 0 || cfg.BlockingWait > MaxBlockingWait {
		cfg.BlockingWait = MaxBlockingWait
	}
	if deps.Observer == nil {
		deps.Observer = noObserver{}
	}
	c := &Controller{
		cfg:       cfg,
		deps:      deps,
		log:       deps.Log,
		now:       deps.Now,
		dial:      deps.DialScheduler,
		conns:     map[string]QueueCreator{},
		rates:     map[string]*rateWindow{},
		leaders:   map[whisk.FQN]whisk.LeaderInfo{},
		creating:  map[whisk.FQN]*creation{},
		retryMin:  retryMin,
		retryMax:  retryMax,
		stepGrace: stepGrace,
		waiters:   map[whisk.ActivationID]chan whisk.Activation{},
		flights:   map[whisk.ActivationID]flight{},
		byAction:  map[whisk.FQN]*actionFlights{},
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.log = c.log.With("controller", cfg.ID)
	if c.now == nil {
		c.now = time.Now
	}
	if c.dial == nil {
		c.dial = DialGRPC
	}
	c.bg, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Run keeps the leader cache current and resolves blocking waiters from the
// completion topic until ctx ends; it returns after its goroutines stopped.
// It fails at once if the completion topic cannot be created.
func (c *Controller) Run(ctx context.Context) error {
	topic := whisk.CompletionTopic(c.cfg.ID)
	if err := c.deps.Bus.EnsureTopic(ctx, topic); err != nil {
		return fmt.Errorf("controller: completion topic %s: %w", topic, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); c.watchLeaders(ctx) }()
	go func() { defer wg.Done(); c.consumeCompletions(ctx, topic) }()
	go func() { defer wg.Done(); c.sweep(ctx) }()
	wg.Wait()
	return nil
}

// Close stops background queue creations and closes scheduler connections.
func (c *Controller) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.connMu.Lock()
	defer c.connMu.Unlock()
	var errs []error
	for addr, qc := range c.conns {
		if err := qc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close scheduler %s: %w", addr, err))
		}
		delete(c.conns, addr)
	}
	return errors.Join(errs...)
}

// watchLeaders feeds the leader cache. WatchLeaders resumes by itself after
// broken watches; an early return (an error) is retried after a pause.
func (c *Controller) watchLeaders(ctx context.Context) {
	for {
		err := c.deps.Cluster.WatchLeaders(ctx, c.onLeader)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("leader watch stopped; retrying", "err", err)
		if !retry.Sleep(ctx, time.Second) {
			return
		}
	}
}

// onLeader applies one leader event. A vanished leader with activations of
// this controller still in flight gets a new queue at once. A deletion seen
// while a creation of the action runs bumps the creation's generation: the
// creation then discards what it read before and reads (or creates) again.
func (c *Controller) onLeader(fqn whisk.FQN, li whisk.LeaderInfo, deleted bool) {
	c.mu.Lock()
	if !deleted {
		c.leaders[fqn] = li
		c.mu.Unlock()
		return
	}
	delete(c.leaders, fqn)
	if cr := c.creating[fqn]; cr != nil {
		cr.gen++
		c.mu.Unlock()
		return
	}
	af := c.byAction[fqn]
	if !c.wantQueueLocked(fqn) {
		c.mu.Unlock()
		return
	}
	meta := af.meta
	cr := &creation{}
	c.creating[fqn] = cr
	c.mu.Unlock()
	c.log.Info("leader vanished with activations in flight; recreating the queue", "action", fqn.String())
	if !c.goBackground(func() { c.createQueue(meta, cr, nil) }) {
		c.doneCreating(fqn, cr)
	}
}

// goBackground runs fn on a tracked goroutine unless the controller is closed.
func (c *Controller) goBackground(fn func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
	return true
}

// consumeCompletions reads the completion topic for group "controller" and
// resolves waiters; it resubscribes after errors.
func (c *Controller) consumeCompletions(ctx context.Context, topic string) {
	for {
		cons, err := c.deps.Bus.Subscribe(ctx, topic, "controller")
		if err == nil {
			err = c.drain(ctx, cons)
			_ = cons.Close()
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("completion consumer failed; resubscribing", "topic", topic, "err", err)
		if !retry.Sleep(ctx, 200*time.Millisecond) {
			return
		}
	}
}

func (c *Controller) drain(ctx context.Context, cons bus.Consumer) error {
	for {
		recs, err := cons.Poll(ctx, 128)
		if err != nil {
			return err
		}
		for _, r := range recs {
			var comp whisk.Completion
			if err := whisk.DecodeCompletion(r.Value, &comp); err != nil {
				c.log.Warn("undecodable completion dropped", "offset", r.Offset, "err", err)
				continue
			}
			c.complete(comp.Activation)
		}
		if len(recs) > 0 {
			if err := cons.Commit(ctx, recs[len(recs)-1].Offset); err != nil {
				return err
			}
		}
	}
}

// complete resolves the waiter of a finished activation and forgets its
// flight. A completion whose waiter is gone (the caller timed out, or the
// activation is another controller incarnation's) is dropped.
func (c *Controller) complete(a whisk.Activation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch := c.waiters[a.ActivationID]; ch != nil {
		delete(c.waiters, a.ActivationID)
		// Buffered (1) and the waiter is removed in the same critical
		// section: sent at most once, never blocks. Sending under c.mu lets
		// a waiter that removes itself on timeout see a completion that
		// raced its timer.
		ch <- a
	}
	c.land(a.ActivationID)
}

// sweep forgets flights whose completion never came (after OpenWhisk's
// slot timeout), so the in-flight counts do not leak.
func (c *Controller) sweep(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.expireFlights(c.now())
		}
	}
}

func (c *Controller) expireFlights(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, f := range c.flights {
		if now.After(f.expires) {
			c.land(id)
		}
	}
}

// takeOff records a published activation; c.mu must be held.
func (c *Controller) takeOff(id whisk.ActivationID, meta whisk.ActionMeta) {
	slot := max(meta.Limits.TimeoutDuration(), time.Minute)*2 + time.Minute
	fqn := meta.FQN()
	f := flight{fqn: fqn, expires: c.now().Add(slot)}
	c.flights[id] = f
	af := c.byAction[fqn]
	if af == nil {
		af = &actionFlights{}
		c.byAction[fqn] = af
	}
	af.meta = meta
	af.n++
	if f.expires.After(af.expires) {
		af.expires = f.expires
	}
}

// wantQueueLocked reports whether this controller still has activations of
// fqn in flight that have not expired; c.mu must be held.
func (c *Controller) wantQueueLocked(fqn whisk.FQN) bool {
	af := c.byAction[fqn]
	return af != nil && af.n > 0 && c.now().Before(af.expires)
}

// land forgets a flight; c.mu must be held.
func (c *Controller) land(id whisk.ActivationID) {
	f, ok := c.flights[id]
	if !ok {
		return
	}
	delete(c.flights, id)
	if af := c.byAction[f.fqn]; af != nil {
		af.n--
		if af.n <= 0 {
			delete(c.byAction, f.fqn)
		}
	}
}
