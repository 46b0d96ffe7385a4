package controller

import (
	"context"
	"fmt"
	"sort"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// ensureQueue makes sure an action has, or is getting, a leader queue. With
// a leader in the cache, or a creation already outstanding for the action,
// it does nothing. Otherwise it lists the schedulers (failing with
// Unavailable when there is none) and asks them, least loaded first, on a
// background goroutine: the caller publishes without waiting, and the
// activation waits in the action's topic until the queue consumes it.
func (c *Controller) ensureQueue(ctx context.Context, meta whisk.ActionMeta) error {
	const op = "controller.ensureQueue"
	fqn := meta.FQN()
	c.mu.Lock()
	if _, ok := c.leaders[fqn]; ok || c.creating[fqn] {
		c.mu.Unlock()
		return nil
	}
	c.creating[fqn] = true
	c.mu.Unlock()

	scheds, err := c.deps.Cluster.Schedulers(ctx)
	if err == nil && len(scheds) == 0 {
		err = fmt.Errorf("no scheduler registered")
	}
	if err != nil {
		c.doneCreating(fqn)
		return whisk.E(op, whisk.Unavailable, whisk.MsgNoSchedulers, err)
	}
	sort.SliceStable(scheds, func(i, j int) bool {
		if scheds[i].Queues != scheds[j].Queues {
			return scheds[i].Queues < scheds[j].Queues
		}
		return scheds[i].ID < scheds[j].ID
	})
	if !c.goBackground(func() { c.createQueue(meta, scheds) }) {
		c.doneCreating(fqn)
		return whisk.E(op, whisk.Unavailable, "", fmt.Errorf("controller closed"))
	}
	return nil
}

// setLeader caches a leader learnt from etcd or a CreateQueue answer unless
// the watch got there first.
func (c *Controller) setLeader(fqn whisk.FQN, li whisk.LeaderInfo) {
	c.mu.Lock()
	if _, ok := c.leaders[fqn]; !ok && li.Addr != "" {
		c.leaders[fqn] = li
	}
	c.mu.Unlock()
}

func (c *Controller) doneCreating(fqn whisk.FQN) {
	c.mu.Lock()
	delete(c.creating, fqn)
	c.mu.Unlock()
}

// createQueue asks the schedulers in order until one answers; the answer's
// leader goes into the cache (unless the watch got there first).
func (c *Controller) createQueue(meta whisk.ActionMeta, scheds []whisk.SchedulerInfo) {
	fqn := meta.FQN()
	defer c.doneCreating(fqn)
	// The watch may not have delivered an existing leader yet (at start-up).
	if li, ok, err := c.deps.Cluster.Leader(c.bg, fqn); err == nil && ok {
		c.setLeader(fqn, li)
		return
	}
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
		if err != nil {
			c.log.Warn("create queue failed; trying another scheduler",
				"action", fqn.String(), "scheduler", s.ID, "err", err)
			continue
		}
		c.setLeader(fqn, resp.Leader)
		c.log.Debug("queue created", "action", fqn.String(), "leader", resp.Leader.SchedulerID)
		return
	}
	c.log.Error("no scheduler created the queue; its activations wait in the topic until the next invocation retries",
		"action", fqn.String())
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
// The returned QueueCreator is an io.Closer.
func DialGRPC(addr string) (QueueCreator, error) {
	opts := append(rpc.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial scheduler %s: %w", addr, err)
	}
	return &grpcScheduler{Client: rpc.NewClient(cc), cc: cc}, nil
}
