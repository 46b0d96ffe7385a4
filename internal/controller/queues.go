package controller

import (
	"context"
	"fmt"
	"sort"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// claimCreationLocked reports whether the action needs a queue creation
// started: no leader is cached and no creation is running. If so, it
// registers a new creation, which the caller must start (startCreation) or
// release (doneCreating). c.mu must be held.
func (c *Controller) claimCreationLocked(fqn whisk.FQN) *creation {
	if _, ok := c.leaders[fqn]; ok || c.creating[fqn] != nil {
		return nil
	}
	cr := &creation{}
	c.creating[fqn] = cr
	return cr
}

// startCreation runs a claimed creation. It lists the schedulers (failing
// with Unavailable, and releasing the claim, when there is none) and asks
// them, least loaded first, on a background goroutine: the caller publishes
// without waiting, and the activation waits in the action's topic until the
// queue consumes it.
func (c *Controller) startCreation(ctx context.Context, meta whisk.ActionMeta, cr *creation) error {
	const op = "controller.startCreation"
	fqn := meta.FQN()
	scheds, err := c.schedulers(ctx)
	if err != nil {
		c.doneCreating(fqn, cr)
		return whisk.E(op, whisk.Unavailable, whisk.MsgNoSchedulers, err)
	}
	if !c.goBackground(func() { c.createQueue(meta, cr, scheds) }) {
		c.doneCreating(fqn, cr)
		return whisk.E(op, whisk.Unavailable, "", fmt.Errorf("controller closed"))
	}
	return nil
}

// schedulers lists the registered schedulers, least loaded first; none is
// an error.
func (c *Controller) schedulers(ctx context.Context) ([]whisk.SchedulerInfo, error) {
	scheds, err := c.deps.Cluster.Schedulers(ctx)
	if err == nil && len(scheds) == 0 {
		err = fmt.Errorf("no scheduler registered")
	}
	if err != nil {
		return nil, err
	}
	sort.SliceStable(scheds, func(i, j int) bool {
		if scheds[i].Queues != scheds[j].Queues {
			return scheds[i].Queues < scheds[j].Queues
		}
		return scheds[i].ID < scheds[j].ID
	})
	return scheds, nil
}

// generation returns cr's deletion generation, to capture before a leader
// read.
func (c *Controller) generation(cr *creation) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cr.gen
}

// setLeader caches a leader that creation cr read (from etcd or a
// CreateQueue answer) while cr's generation was gen, and ends cr in the same
// critical section. It reports false, leaving the cache alone, when a
// deletion of the action's leader was seen since gen: what was read may be
// that leader, and caching it would outlive the key. If the watch cached a
// leader first, that one stays and the creation ends too.
func (c *Controller) setLeader(fqn whisk.FQN, cr *creation, gen uint64, li whisk.LeaderInfo) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.leaders[fqn]; !ok {
		if c.creating[fqn] != cr || cr.gen != gen {
			return false
		}
		c.leaders[fqn] = li
	}
	c.releaseLocked(fqn, cr)
	return true
}

// stillWanted reports whether creation cr should go on: no leader cached,
// and activations of the action still in flight and unexpired. When not, it
// ends cr in the same critical section, so a later leader deletion sees no
// creation and decides for itself.
func (c *Controller) stillWanted(fqn whisk.FQN, cr *creation) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, cached := c.leaders[fqn]
	if !cached && c.creating[fqn] == cr && c.wantQueueLocked(fqn) {
		return true
	}
	c.releaseLocked(fqn, cr)
	return false
}

// doneCreating ends creation cr (if it is still the action's creation).
func (c *Controller) doneCreating(fqn whisk.FQN, cr *creation) {
	c.mu.Lock()
	c.releaseLocked(fqn, cr)
	c.mu.Unlock()
}

func (c *Controller) releaseLocked(fqn whisk.FQN, cr *creation) {
	if c.creating[fqn] == cr {
		delete(c.creating, fqn)
	}
}

// createQueue runs creation cr until the action's leader is cached, this
// controller has no unexpired activation of the action in flight, or the
// controller closes. Each pass reads the leader from etcd (the watch may not
// have delivered it yet) and otherwise asks the schedulers in order
// (scheds, or a fresh list) until one answers. A pass that no scheduler
// answered is retried after a backoff; a pass whose read was overtaken by a
// leader deletion is retried at once.
func (c *Controller) createQueue(meta whisk.ActionMeta, cr *creation, scheds []whisk.SchedulerInfo) {
	fqn := meta.FQN()
	defer c.doneCreating(fqn, cr)
	backoff := retry.New(c.retryMin, c.retryMax)
	delay := backoff.Next()
	for pass := 0; ; pass++ {
		if c.bg.Err() != nil {
			return
		}
		if pass > 0 && !c.stillWanted(fqn, cr) {
			c.log.Debug("queue creation no longer needed", "action", fqn.String())
			return
		}
		gen := c.generation(cr)
		if li, ok, err := c.deps.Cluster.Leader(c.bg, fqn); err == nil && ok && li.Addr != "" {
			if c.setLeader(fqn, cr, gen, li) {
				return
			}
			continue // a deletion overtook the read
		}
		if scheds == nil {
			var err error
			if scheds, err = c.schedulers(c.bg); err != nil {
				c.log.Warn("queue creation: cannot list schedulers; retrying",
					"action", fqn.String(), "err", err, "in", delay)
			}
		}
		if len(scheds) > 0 {
			li, ok := c.askSchedulers(meta, scheds)
			scheds = nil // the next pass lists them afresh
			if ok {
				if c.setLeader(fqn, cr, gen, li) {
					c.log.Debug("queue created", "action", fqn.String(), "leader", li.SchedulerID)
					return
				}
				continue // the new leader vanished already: read again
			}
			c.log.Warn("no scheduler created the queue; retrying while activations are in flight",
				"action", fqn.String(), "in", delay)
		}
		if !retry.Sleep(c.bg, delay) {
			return
		}
		delay = backoff.Next()
	}
}

// askSchedulers asks up to createAttempts schedulers, in order, to create
// the action's queue and returns the first answer's leader.
func (c *Controller) askSchedulers(meta whisk.ActionMeta, scheds []whisk.SchedulerInfo) (whisk.LeaderInfo, bool) {
	fqn := meta.FQN()
	for i, s := range scheds {
		if i == createAttempts || c.bg.Err() != nil {
			break
		}
		qc, err := c.scheduler(s.Addr)
		if err != nil {
			c.log.Warn("dial scheduler", "scheduler", s.ID, "addr", s.Addr, "err", err)
			continue
		}
		ctx, cancel := context.WithTimeout(c.bg, createTimeout)
		resp, err := qc.CreateQueue(ctx, &rpc.CreateQueueRequest{Action: meta})
		cancel()
		if err == nil && (resp == nil || resp.Leader.Addr == "") {
			err = fmt.Errorf("answer names no leader address")
		}
		if err != nil {
			c.log.Warn("create queue failed; trying another scheduler",
				"action", fqn.String(), "scheduler", s.ID, "err", err)
			continue
		}
		return resp.Leader, true
	}
	return whisk.LeaderInfo{}, false
}

// scheduler returns the one client of a scheduler address, dialling it the
// first time.
func (c *Controller) scheduler(addr string) (QueueCreator, error) {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if qc, ok := c.conns[addr]; ok {
		return qc, nil
	}
	qc, err := c.dial(addr)
	if err != nil {
		return nil, err
	}
	c.conns[addr] = qc
	return qc, nil
}

// grpcScheduler is a scheduler client over its own connection.
type grpcScheduler struct {
	*rpc.Client
	cc *grpc.ClientConn
}

func (g *grpcScheduler) Close() error { return g.cc.Close() }

// DialGRPC is the default Deps.DialScheduler: a plaintext gRPC connection
// (grpc.NewClient connects lazily) speaking the rpc package's JSON codec.
func DialGRPC(addr string) (QueueCreator, error) {
	return DialGRPCWith(insecure.NewCredentials())(addr)
}

// DialGRPCWith is a Deps.DialScheduler whose connections creds secure
// (credentials.NewTLS of a pki.Files.Config for mutual TLS).
func DialGRPCWith(creds credentials.TransportCredentials) func(addr string) (QueueCreator, error) {
	return func(addr string) (QueueCreator, error) {
		opts := append(rpc.DialOptions(), grpc.WithTransportCredentials(creds))
		cc, err := grpc.NewClient(addr, opts...)
		if err != nil {
			return nil, fmt.Errorf("dial scheduler %s: %w", addr, err)
		}
		return &grpcScheduler{Client: rpc.NewClient(cc), cc: cc}, nil
	}
}

// InFlight counts the activations this controller published whose
// completion has not come (nor expired): what a drain waits for.
func (c *Controller) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.flights)
}

// EnsureQueue asks a scheduler for the action's queue when none is known
// or being made, as an invocation does, but publishes nothing: for
// activations already waiting in the action's topic, such as those a
// durable bus replayed at start. Errors as startCreation's.
func (c *Controller) EnsureQueue(ctx context.Context, meta whisk.ActionMeta) error {
	c.mu.Lock()
	cr := c.claimCreationLocked(meta.FQN())
	c.mu.Unlock()
	if cr == nil {
		return nil
	}
	return c.startCreation(ctx, meta, cr)
}
