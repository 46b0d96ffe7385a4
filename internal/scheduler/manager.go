package scheduler

import (
	"context"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/queue"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// entry is one action in the QueueManager's map: under election (ready
// open), hosting a queue, or leaving (the queue ended; gone closes once its
// leader key is resigned and the entry is out of the map).
type entry struct {
	q     *queue.Queue
	ready chan struct{}
	gone  chan struct{}
	once  sync.Once
	lost  bool // guarded by Scheduler.mu: leadership passed to someone else
}

func (e *entry) close() {
	e.once.Do(func() {
		select {
		case <-e.ready:
		default:
			close(e.ready)
		}
		close(e.gone)
	})
}

// live reports whether the entry hosts a queue that is not ending.
func (e *entry) live() bool {
	select {
	case <-e.ready:
	default:
		return false
	}
	if e.q == nil {
		return false
	}
	st := e.q.State()
	return st != queue.Removing && st != queue.Removed
}

// Fetch routes a container's fetch to the action's queue.
func (s *Scheduler) Fetch(ctx context.Context, req *rpc.FetchRequest) (*rpc.FetchResponse, error) {
	f := whisk.FQN{Namespace: req.Namespace, Name: req.Action}
	s.mu.RLock()
	e := s.queues[f]
	s.mu.RUnlock()
	if e == nil {
		return &rpc.FetchResponse{Status: rpc.FetchNoQueue}, nil
	}
	select {
	case <-e.ready:
	default:
		return &rpc.FetchResponse{Status: rpc.FetchNoQueue}, nil
	}
	if e.q == nil {
		return &rpc.FetchResponse{Status: rpc.FetchNoQueue}, nil
	}
	return e.q.Fetch(ctx, req)
}

// CreateQueue makes sure the action has a leader queue: this scheduler's
// if it wins the election (or holds the key already), else the current
// leader's.
func (s *Scheduler) CreateQueue(ctx context.Context, req *rpc.CreateQueueRequest) (*rpc.CreateQueueResponse, error) {
	meta := req.Action
	f := meta.FQN()
	if f.Namespace == "" || f.Name == "" {
		return nil, whisk.Errorf(whisk.Invalid, "CreateQueue needs the action's namespace and name")
	}
	for {
		s.mu.Lock()
		if s.runCtx == nil || s.stopping {
			s.mu.Unlock()
			return nil, whisk.E("CreateQueue", whisk.Unavailable, "the scheduler is not running", nil)
		}
		e, ok := s.queues[f]
		if !ok {
			e = &entry{ready: make(chan struct{}), gone: make(chan struct{})}
			s.queues[f] = e
			runCtx := s.runCtx
			s.mu.Unlock()
			return s.elect(ctx, runCtx, meta, e)
		}
		s.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.live() {
			return &rpc.CreateQueueResponse{Leader: s.me}, nil
		}
		select { // an election that lost, or a queue leaving: start over
		case <-e.gone:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *Scheduler) elect(ctx, runCtx context.Context, meta whisk.ActionMeta, e *entry) (*rpc.CreateQueueResponse, error) {
	f := meta.FQN()
	drop := func() {
		s.mu.Lock()
		if s.queues[f] == e {
			delete(s.queues, f)
		}
		s.mu.Unlock()
		e.close()
	}
	won, cur, err := s.d.Session.ElectLeader(ctx, f, s.me)
	if err != nil {
		drop()
		return nil, whisk.E("CreateQueue", whisk.Unavailable, "", err)
	}
	if !won && cur.SchedulerID != s.cfg.ID {
		drop()
		s.log.Debug("queue led elsewhere", "action", f.String(), "leader", cur.SchedulerID)
		return &rpc.CreateQueueResponse{Leader: cur}, nil
	}
	q, err := queue.New(queue.Config{
		Action: meta, NamespaceLimit: s.cfg.NamespaceLimit,
		Tick: s.cfg.Tick, Park: s.cfg.Park, Retention: s.cfg.Retention, IdleTimeout: s.cfg.IdleQueueTimeout,
	}, s.queueDeps(f))
	if err == nil {
		s.mu.Lock()
		if s.stopping {
			err = whisk.E("CreateQueue", whisk.Unavailable, "the scheduler is stopping", nil)
		} else {
			e.q = q
			s.active++
			s.wg.Add(1)
		}
		s.mu.Unlock()
	}
	if err != nil {
		s.resign(runCtx, f)
		drop()
		return nil, err
	}
	close(e.ready)
	go s.own(runCtx, f, e)
	s.loadChanged()
	s.log.Info("queue created", "action", f.String(), "rev", meta.Rev)
	return &rpc.CreateQueueResponse{Leader: s.me}, nil
}

// own runs a queue to its end, then resigns its leader key (unless someone
// else leads now) before the entry leaves the map.
func (s *Scheduler) own(ctx context.Context, f whisk.FQN, e *entry) {
	defer s.wg.Done()
	_ = e.q.Run(ctx)
	s.mu.RLock()
	lost := e.lost
	s.mu.RUnlock()
	if !lost {
		s.resign(ctx, f)
	}
	s.mu.Lock()
	if s.queues[f] == e {
		delete(s.queues, f)
	}
	s.active--
	s.mu.Unlock()
	e.close()
	s.loadChanged()
	s.log.Info("queue removed", "action", f.String(), "lost", lost)
}

func (s *Scheduler) resign(ctx context.Context, f whisk.FQN) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.d.Session.ResignLeader(rctx, f); err != nil {
		s.log.Warn("scheduler: resigning the leader key", "action", f.String(), "err", err)
	}
}

// reconcile runs after the session re-granted its lease: every local queue
// is elected again; a queue whose key another scheduler holds now is
// abandoned without committing.
func (s *Scheduler) reconcile(ctx context.Context) {
	s.mu.RLock()
	if s.runCtx == nil || s.stopping {
		s.mu.RUnlock()
		return
	}
	var es []*entry
	for _, e := range s.queues {
		if e.live() {
			es = append(es, e)
		}
	}
	s.mu.RUnlock()
	for _, e := range es {
		f := e.q.FQN()
		won, cur, err := s.d.Session.ElectLeader(ctx, f, s.me)
		switch {
		case err != nil:
			s.log.Warn("scheduler: re-electing after a lease re-grant", "action", f.String(), "err", err)
		case !won && cur.SchedulerID != s.cfg.ID:
			s.log.Warn("scheduler: leadership lost; abandoning the queue", "action", f.String(), "leader", cur.SchedulerID)
			s.mu.Lock()
			e.lost = true
			s.mu.Unlock()
			e.q.Abandon()
		}
	}
	s.loadChanged()
}

func (s *Scheduler) queueDeps(f whisk.FQN) queue.Deps {
	topic := whisk.ActionTopic(f)
	return queue.Deps{
		Log: s.log,
		Now: s.d.Now,
		Subscribe: func(ctx context.Context) (bus.Consumer, error) {
			if err := s.ensure(ctx, topic); err != nil {
				return nil, err
			}
			return s.d.Bus.Subscribe(ctx, topic, QueueGroup)
		},
		CountContainers: func(ctx context.Context, rev int64) (int, error) {
			return s.d.Client.CountContainers(ctx, f, rev)
		},
		CountNamespace: func(ctx context.Context) (int, int, error) {
			return s.d.Client.CountNamespace(ctx, f.Namespace)
		},
		Create: s.creator.start,
		Fail:   s.fail,
	}
}
