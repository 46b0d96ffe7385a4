package scheduler

import (
	"context"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/queue"
	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// entry is one action in the QueueManager's map: under election (ready
// open), hosting a queue, or leaving (the queue ended; gone closes once its
// leader key is resigned and the entry is out of the map).
type entry struct {
	q     *queue.Queue
	meta  whisk.ActionMeta // as elected (followers are recruited with it)
	ready chan struct{}
	gone  chan struct{}
	once  sync.Once
	lost  bool // guarded by Scheduler.mu: leadership passed to someone else
	// reelect is guarded by Scheduler.mu: re-electing the queue after a
	// lease re-grant failed; the reconciler tries again every second.
	reelect bool
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

// hosted is the entry's queue once its election is over; nil while it
// runs, or when it lost.
func (e *entry) hosted() *queue.Queue {
	select {
	case <-e.ready:
		return e.q
	default:
		return nil
	}
}

// live reports whether the entry hosts a queue that is not ending.
func (e *entry) live() bool {
	q := e.hosted()
	if q == nil {
		return false
	}
	st := q.State()
	return st != queue.Removing && st != queue.Removed
}

// Timeouts of the scheduler's own etcd calls off the activation path.
const (
	etcdCallTimeout = 2 * time.Second
	resignTimeout   = 5 * time.Second
	// reelectEvery is how often failed re-elections are tried again.
	reelectEvery = time.Second
	// adoptEvery is how often the leader keys naming this scheduler are
	// checked against its local queues (and after every re-grant).
	adoptEvery = 5 * time.Second
)

// Fetch routes a container's fetch to the action's queue.
func (s *Scheduler) Fetch(ctx context.Context, req *rpc.FetchRequest) (*rpc.FetchResponse, error) {
	f := whisk.FQN{Namespace: req.Namespace, Name: req.Action}
	s.mu.RLock()
	e := s.queues[f]
	s.mu.RUnlock()
	if e == nil {
		e = s.recreate(ctx, f, req.Rev)
	}
	if e == nil {
		return &rpc.FetchResponse{Status: rpc.FetchNoQueue}, nil
	}
	q := e.hosted()
	if q == nil {
		return &rpc.FetchResponse{Status: rpc.FetchNoQueue}, nil
	}
	return q.Fetch(ctx, req)
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
	switch req.Role {
	case rpc.RoleLeader:
		return s.createQueue(ctx, meta, false)
	case rpc.RoleFollower:
		return s.follow(ctx, meta)
	default:
		return nil, whisk.Errorf(whisk.Invalid, "CreateQueue: unknown role %q", req.Role)
	}
}

func (s *Scheduler) createQueue(ctx context.Context, meta whisk.ActionMeta, provisional bool) (*rpc.CreateQueueResponse, error) {
	f := meta.FQN()
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
			return s.elect(ctx, runCtx, meta, provisional, e)
		}
		s.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.live() {
			return s.assert(ctx, f, e)
		}
		select { // an election that lost, or a queue leaving: start over
		case <-e.gone:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// assert re-asserts the leader key of a live local queue (a cheap
// put-if-absent): a key lost with an earlier lease is put back; a key
// someone else holds now means the local queue is abandoned and the caller
// is told the holder.
func (s *Scheduler) assert(ctx context.Context, f whisk.FQN, e *entry) (*rpc.CreateQueueResponse, error) {
	won, cur, err := s.d.Session.ElectLeader(ctx, f, s.me)
	switch {
	case err != nil:
		// The queue is live here; the reconciler keeps trying.
		s.log.Warn("scheduler: re-asserting the leader key", "action", f.String(), "err", err)
		s.mu.Lock()
		e.reelect = true
		s.mu.Unlock()
	case !won && cur.SchedulerID != s.cfg.ID:
		s.abandon(f, e, cur)
		return &rpc.CreateQueueResponse{Leader: cur}, nil
	case !won: // a predecessor's lease holds the key (see reconcile)
		s.mu.Lock()
		e.reelect = true
		s.mu.Unlock()
	}
	return &rpc.CreateQueueResponse{Leader: s.me}, nil
}

// abandon ends a local queue whose leader key another scheduler holds.
func (s *Scheduler) abandon(f whisk.FQN, e *entry, holder whisk.LeaderInfo) {
	s.log.Warn("scheduler: leadership lost; abandoning the queue", "action", f.String(), "leader", holder.SchedulerID)
	s.mu.Lock()
	e.lost, e.reelect = true, false
	s.mu.Unlock()
	e.q.Abandon()
}

// recreate serves a fetch for an action with no local queue whose leader
// key is nevertheless this scheduler's (a queue that ended without its
// key, or a key re-put under a new lease): it re-creates the queue here,
// with the name and revision the fetch gives; the queue takes the rest of
// the action's metadata from its first message. It returns nil when the
// key is not ours or the queue could not be made.
func (s *Scheduler) recreate(ctx context.Context, f whisk.FQN, rev int64) *entry {
	if f.Namespace == "" || f.Name == "" {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	li, ok, err := s.d.Client.Leader(lctx, f)
	cancel()
	if err != nil || !ok || li.SchedulerID != s.cfg.ID {
		return nil
	}
	s.log.Warn("scheduler: leader key without a queue; re-creating the queue", "action", f.String())
	meta := whisk.ActionMeta{Namespace: f.Namespace, Name: f.Name, Rev: rev}
	if _, err := s.createQueue(ctx, meta, true); err != nil {
		s.log.Warn("scheduler: re-creating a queue", "action", f.String(), "err", err)
		return nil
	}
	s.mu.RLock()
	e := s.queues[f]
	s.mu.RUnlock()
	return e
}

func (s *Scheduler) elect(ctx, runCtx context.Context, meta whisk.ActionMeta, provisional bool, e *entry) (*rpc.CreateQueueResponse, error) {
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
		Action: meta, Provisional: provisional, NamespaceLimit: s.cfg.NamespaceLimit,
		Tick: s.cfg.Tick, Park: s.cfg.Park, Retention: s.cfg.Retention, IdleTimeout: s.cfg.IdleQueueTimeout,
	}, s.queueDeps(f))
	if err == nil {
		s.mu.Lock()
		if s.stopping {
			err = whisk.E("CreateQueue", whisk.Unavailable, "the scheduler is stopping", nil)
		} else {
			e.q, e.meta = q, meta
			// !won: a predecessor's lease holds the key (see reconcile).
			e.reelect = !won
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
	s.unfollow(f) // a follower that leads now follows no more
	s.goRecruit(meta)
	return &rpc.CreateQueueResponse{Leader: s.me}, nil
}

// own runs a queue to its end, then gives up its leader key before the
// entry leaves the map: a key must never point at a queue that does not
// exist, so a failed resign is retried until it succeeds or the scheduler
// stops (its lease then goes with the session). How depends on why the
// queue ended: removed on purpose (idle, topic gone) it retires the queue
// (leader and follower keys together: the followers stop); stopped with
// the scheduler, or fenced off the topic by the bus, it resigns the leader
// key only if it is still its own (a follower takes over); abandoned to
// another leader, it touches nothing.
func (s *Scheduler) own(ctx context.Context, f whisk.FQN, e *entry) {
	defer s.wg.Done()
	_ = e.q.Run(ctx)
	s.mu.RLock()
	lost := e.lost
	s.mu.RUnlock()
	why := e.q.Ended()
	switch {
	case lost || why == queue.EndAbandoned:
		lost = true
	case why == queue.EndIdle || why == queue.EndTopicGone:
		s.giveUp(ctx, f, true)
	default:
		s.giveUp(ctx, f, false)
	}
	s.mu.Lock()
	if s.queues[f] == e {
		delete(s.queues, f)
	}
	s.stats.retired(e.q)
	s.active--
	s.mu.Unlock()
	e.close()
	s.loadChanged()
	s.log.Info("queue removed", "action", f.String(), "why", why.String(), "lost", lost, "duplicatesSkipped", e.q.Duplicates(), "handedAgain", e.q.Redelivered())
}

// resign deletes f's leader key if this scheduler holds it (see giveUp).
func (s *Scheduler) resign(ctx context.Context, f whisk.FQN) { s.giveUp(ctx, f, false) }

// giveUp deletes f's leader key if this scheduler holds it — with the
// follower keys when retire is set — retrying with backoff until it
// succeeds; once ctx has ended it tries once more and gives up (the
// scheduler is stopping: its session's lease goes next).
func (s *Scheduler) giveUp(ctx context.Context, f whisk.FQN, retire bool) {
	backoff := retry.New(100*time.Millisecond, 2*time.Second)
	for {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resignTimeout)
		var err error
		if retire {
			err = s.d.Session.RetireQueue(rctx, f)
		} else {
			err = s.d.Session.ResignLeader(rctx, f)
		}
		cancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			s.log.Warn("scheduler: resigning the leader key failed while stopping", "action", f.String(), "err", err)
			return
		}
		d := backoff.Next()
		s.log.Warn("scheduler: resigning the leader key; retrying", "action", f.String(), "err", err, "in", d)
		retry.Sleep(ctx, d) // after ctx ends: one last try
	}
}

// onRegrant is the session's re-grant hook (run off the keep-alive loop).
// It has the reconciler re-elect every local queue and waits until it has:
// the session revokes its former leases only after its hooks return, so a
// leader key still held by the old lease is moved to the new one first and
// never vanishes (else the followers would take every queue over after
// each etcd outage longer than the TTL).
func (s *Scheduler) onRegrant(ctx context.Context) {
	s.mu.RLock()
	runCtx := s.runCtx
	s.mu.RUnlock()
	if runCtx == nil {
		return
	}
	done := make(chan struct{})
	select {
	case s.regrant <- done:
	case <-ctx.Done():
		return
	case <-runCtx.Done():
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	case <-runCtx.Done():
	}
}

// reconcileLoop re-elects every local queue after a lease re-grant, and
// every second the queues whose re-election failed, until ctx ends.
func (s *Scheduler) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(reelectEvery)
	defer t.Stop()
	at := time.NewTicker(adoptEvery)
	defer at.Stop()
	var checkFollowers <-chan time.Time
	if s.cfg.Followers > 0 {
		ft := time.NewTicker(followerCheckEvery)
		defer ft.Stop()
		checkFollowers = ft.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case done := <-s.regrant:
			s.reconcile(ctx, true)
			close(done)
			s.adoptOrphans(ctx)
		case <-t.C:
			s.reconcile(ctx, false)
		case <-at.C:
			s.adoptOrphans(ctx)
		case <-checkFollowers:
			s.checkFollowers(ctx)
		}
	}
}

// adoptOrphans re-creates the queue of every action whose leader key names
// this scheduler but that has no local queue (OpenWhisk #5301: a key
// pointing at a scheduler without the queue). Controllers trust the key and
// ask nobody, and with no container left no fetch re-creates the queue:
// without this, the action's activations would wait in its topic forever.
// An action with a local entry (electing, live or leaving) is left alone.
func (s *Scheduler) adoptOrphans(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	fs, err := s.d.Client.LeadersOf(lctx, s.cfg.ID)
	cancel()
	if err != nil {
		s.log.Debug("scheduler: listing own leader keys failed", "err", err)
		return
	}
	for _, f := range fs {
		if ctx.Err() != nil {
			return
		}
		s.mu.RLock()
		_, ok := s.queues[f]
		s.mu.RUnlock()
		if !ok {
			s.recreate(ctx, f, 0) // rev 0: the queue takes the revision of its first message
		}
	}
}

// reconcile elects local queues again (all of them after a re-grant, else
// those marked for it): a key lost with the old lease is put back; a queue
// whose key another scheduler holds now is abandoned; a failed election is
// marked and tried again.
func (s *Scheduler) reconcile(ctx context.Context, all bool) {
	s.mu.Lock()
	if s.runCtx == nil || s.stopping {
		s.mu.Unlock()
		return
	}
	var es []*entry
	for _, e := range s.queues {
		if !e.live() {
			continue
		}
		if all {
			e.reelect = true
		}
		if e.reelect {
			es = append(es, e)
		}
	}
	s.mu.Unlock()
	for _, e := range es {
		if ctx.Err() != nil {
			return
		}
		f := e.q.FQN()
		ectx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		won, cur, err := s.d.Session.ElectLeader(ectx, f, s.me)
		cancel()
		switch {
		case err != nil:
			s.log.Warn("scheduler: re-electing a queue; retrying", "action", f.String(), "err", err, "in", reelectEvery)
		case !won && cur.SchedulerID != s.cfg.ID:
			s.abandon(f, e, cur)
		case !won:
			// The key names this scheduler under a lease not its session's:
			// a predecessor with the same id (killed and restarted). Tried
			// again every second until that lease ends (the key is then
			// taken, or another scheduler's and the queue is abandoned).
		default:
			s.mu.Lock()
			e.reelect = false
			s.mu.Unlock()
		}
	}
	if len(es) > 0 {
		s.loadChanged()
	}
}

func (s *Scheduler) queueDeps(f whisk.FQN) queue.Deps {
	topic := whisk.ActionTopic(f)
	d := queue.Deps{
		Log:      s.log,
		Warnings: s.warn,
		Now:      s.d.Now,
		Subscribe: func(ctx context.Context) (bus.Consumer, error) {
			if err := s.ensure(ctx, topic); err != nil {
				return nil, err
			}
			if s.cfg.HandOver && s.d.Assigner != nil {
				return s.d.Assigner.Assign(ctx, topic, QueueGroup)
			}
			return s.d.Bus.Subscribe(ctx, topic, QueueGroup)
		},
		CountContainers: func(ctx context.Context, rev int64) (int, error) {
			return s.d.Client.CountContainers(ctx, f, rev)
		},
		CountNamespace: func(ctx context.Context) (int, int, error) {
			return s.countNamespace(ctx, f.Namespace)
		},
		CPUBusy:      s.cpuBusy,
		Create:       s.countedCreate,
		Fail:         s.fail,
		Recorded:     s.recorded(),
		InvokerAlive: s.invokerAlive,
	}
	s.shareDeps(f, &d)
	if s.cfg.HandOver {
		d.Handover = handover{s.d.Handovers, f}
	}
	return d
}

// shareDeps wires the queue of f to the namespace's share in etcd.
func (s *Scheduler) shareDeps(f whisk.FQN, d *queue.Deps) {
	sc, ds := s.d.Client, s.d.Session
	d.NamespaceShare = func(ctx context.Context, giveBackOnly bool) (map[string]int, map[string]bool, error) {
		if giveBackOnly {
			// A steady queue asks every ShareEvery: one count-only read
			// when nobody wants a share, not every container key of the
			// namespace.
			wanted, err := s.demands.has(ctx, s.d.Now(), f.Namespace, sc.HasDemand)
			if err != nil || !wanted {
				return nil, map[string]bool{}, err
			}
		}
		return sc.NamespaceShare(ctx, f.Namespace)
	}
	d.Want = func(ctx context.Context, want bool) error {
		if want {
			err := ds.PutDemand(ctx, f, s.cfg.ID)
			s.demands.forget(f.Namespace) // this scheduler's holders see it at once
			return err
		}
		return ds.DeleteDemand(ctx, f)
	}
}

// demandFresh is how long a namespace's demand read answers the give-back
// reads of its queues on this scheduler: every queue that holds containers
// asks every queue.ShareEvery whether an action of its namespace wants a
// share, and one read per namespace answers them all (idle warm containers
// of many actions cost etcd reads per namespace, not per queue).
const demandFresh = queue.ShareEvery / 2

// demandCache shares the namespaces' demand reads between the queues of a
// scheduler (demandFresh). Safe for concurrent use; errors are not kept.
type demandCache struct {
	mu sync.Mutex
	ns map[string]demandRead
}

type demandRead struct {
	at     time.Time
	wanted bool
}

// has reports whether an action of ns wants a share, from a read younger
// than demandFresh or from read.
func (c *demandCache) has(ctx context.Context, now time.Time, ns string, read func(context.Context, string) (bool, error)) (bool, error) {
	c.mu.Lock()
	r, ok := c.ns[ns]
	c.mu.Unlock()
	if ok && now.Sub(r.at) < demandFresh && !now.Before(r.at) {
		return r.wanted, nil
	}
	wanted, err := read(ctx, ns)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ns == nil || len(c.ns) >= maxDemandCache {
		c.ns = map[string]demandRead{} // stale entries go; the live ones are read again
	}
	c.ns[ns] = demandRead{at: now, wanted: wanted}
	return wanted, nil
}

// forget drops ns's read: a demand was just published.
func (c *demandCache) forget(ns string) {
	c.mu.Lock()
	delete(c.ns, ns)
	c.mu.Unlock()
}

// maxDemandCache bounds the namespaces remembered.
const maxDemandCache = 4096

// watchContainers tells the local queues that their containers' keys
// vanished (internal/queue, lost.go), until ctx ends.
func (s *Scheduler) watchContainers(ctx context.Context) {
	c := s.d.Client
	for {
		err := c.WatchContainerDeletes(ctx, func(info whisk.ContainerInfo) {
			s.mu.RLock()
			e := s.queues[info.FQN()]
			s.mu.RUnlock()
			if e != nil && e.live() {
				e.q.ContainerGone(info.InvokerID, info.ContainerID)
			}
		})
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("scheduler: watching container keys failed; retrying", "err", err)
		if !retry.Sleep(ctx, time.Second) {
			return
		}
	}
}

// invokerAlive is the queues' check, after a container key vanished, that
// its invoker is still registered (then the invoker records what its
// container ran).
func (s *Scheduler) invokerAlive(ctx context.Context, invokerID string) (bool, error) {
	invs, err := s.d.Client.Invokers(ctx)
	if err != nil {
		return false, err
	}
	for _, inv := range invs {
		if inv.ID == invokerID {
			return true, nil
		}
	}
	return false, nil
}

// recorded is the queues' duplicate check: which activations already have
// a record in the store.
func (s *Scheduler) recorded() func(context.Context, []whisk.ActivationMessage) (map[whisk.ActivationID]bool, error) {
	r := s.d.Activations
	return func(ctx context.Context, msgs []whisk.ActivationMessage) (map[whisk.ActivationID]bool, error) {
		out := make(map[whisk.ActivationID]bool, len(msgs))
		for _, m := range msgs {
			_, err := r.GetActivation(ctx, m.RecordNamespace(), m.ActivationID)
			switch {
			case err == nil:
				out[m.ActivationID] = true
			case whisk.IsKind(err, whisk.NotFound):
			default:
				return out, err
			}
		}
		return out, nil
	}
}
