package scheduler

import (
	"cmp"
	"context"
	"errors"
	"net"
	"slices"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Followers (docs/cluster.md): a scheduler that wins an action's
// election asks Config.Followers other schedulers — fewest queues first —
// to follow the action (CreateQueue with rpc.RoleFollower). A follower
// writes its follower key under its own lease, holds no activations and
// watches the leader key (Client.WatchLeader, resuming from the last
// revision seen). When the key vanishes alone — its leader's lease expired,
// or the leader stopped — the follower elects itself (put-if-absent); the
// winner starts a leader queue, which resumes the action's topic from the
// committed offset (with Config.HandOver and an Assigner at once, reading
// the partition directly; else through the group, waiting, if the dead
// leader's consumer is still in it, until the bus gives it the topic); the
// losers follow the new leader. With Config.HandOver a follower also
// deposes a leader whose process is gone (probeEvery) instead of waiting
// for its lease to expire. When the leader retires the queue on
// purpose (idle, action deleted: Session.RetireQueue deletes the leader
// and follower keys together) followers stop. The leader checks every
// followerCheckEvery that its queues have their followers and recruits
// the missing ones (a follower's lease ended, a follower became leader).

const (
	// followerCheckEvery is how often a leader recruits missing followers.
	followerCheckEvery = 5 * time.Second
	// recruitTimeout bounds one follow request to another scheduler.
	recruitTimeout = 2 * time.Second
	// takeoverRetry is the pause between failed elections of a follower
	// whose leader key is gone.
	takeoverRetry = 250 * time.Millisecond
	// probeEvery is how often a follower, with Config.HandOver, checks
	// that its leader's process still listens; probeStrikes refused
	// connections in a row depose it (DeposeLeader) instead of waiting
	// for its lease to expire: a killed process's port refuses at once,
	// while a paused or cut-off one is left to its lease (fencing makes a
	// wrong guess safe: a deposed leader hands out nothing more).
	probeEvery   = 200 * time.Millisecond
	probeStrikes = 2
)

// follower is one action this scheduler follows.
type follower struct {
	meta   whisk.ActionMeta // guarded by Scheduler.mu; the newest revision heard of
	cancel context.CancelFunc
	done   chan struct{}
}

// follow makes this scheduler a follower of meta's queue (idempotent). It
// answers with the leader as this scheduler knows it: itself when it hosts
// the queue (it does not follow then), else the leader key's holder.
func (s *Scheduler) follow(ctx context.Context, meta whisk.ActionMeta) (*rpc.CreateQueueResponse, error) {
	f := meta.FQN()
	s.mu.Lock()
	if s.runCtx == nil || s.stopping {
		s.mu.Unlock()
		return nil, whisk.E("CreateQueue", whisk.Unavailable, "the scheduler is not running", nil)
	}
	if _, ok := s.queues[f]; ok {
		s.mu.Unlock()
		return &rpc.CreateQueueResponse{Leader: s.me}, nil
	}
	if fl, ok := s.follows[f]; ok {
		if meta.Rev > fl.meta.Rev {
			fl.meta = meta
		}
		s.mu.Unlock()
	} else {
		fctx, cancel := context.WithCancel(s.runCtx)
		fl := &follower{meta: meta, cancel: cancel, done: make(chan struct{})}
		s.follows[f] = fl
		s.wg.Add(1)
		s.mu.Unlock()
		go s.runFollow(fctx, f, fl)
		s.log.Info("following a queue", "action", f.String())
	}
	lctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	li, _, err := s.d.Client.Leader(lctx, f)
	if err != nil {
		return nil, whisk.E("CreateQueue", whisk.Unavailable, "", err)
	}
	return &rpc.CreateQueueResponse{Leader: li}, nil
}

// unfollow stops following f (this scheduler leads it now); the follower
// goroutine removes the follower key.
func (s *Scheduler) unfollow(f whisk.FQN) {
	s.mu.Lock()
	fl := s.follows[f]
	s.mu.Unlock()
	if fl != nil {
		fl.cancel()
	}
}

type leaderChange struct {
	li               whisk.LeaderInfo
	present, retired bool
}

// runFollow is one follower: it registers the follower key, watches the
// leader key and takes over when the key vanishes, until it leads, the
// queue is retired, or ctx ends. It removes the follower key on its way
// out.
func (s *Scheduler) runFollow(ctx context.Context, f whisk.FQN, fl *follower) {
	defer s.wg.Done()
	defer close(fl.done)
	defer func() {
		s.mu.Lock()
		if s.follows[f] == fl {
			delete(s.follows, f)
		}
		s.mu.Unlock()
		fl.cancel()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), etcdCallTimeout)
		if err := s.d.Session.DeregisterFollower(dctx, f, s.cfg.ID); err != nil {
			s.log.Warn("scheduler: removing a follower key (retried by the session)", "action", f.String(), "err", err)
		}
		cancel()
	}()
	backoff := retry.New(100*time.Millisecond, 2*time.Second)
	for {
		rctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		err := s.d.Session.RegisterFollower(rctx, f, s.me)
		cancel()
		if err == nil {
			break
		}
		d := backoff.Next()
		s.log.Warn("scheduler: writing a follower key; retrying", "action", f.String(), "err", err, "in", d)
		if !retry.Sleep(ctx, d) {
			return
		}
	}

	changes := make(chan leaderChange, 16)
	wctx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- s.d.Client.WatchLeader(wctx, f, func(li whisk.LeaderInfo, present, retired bool) {
			select {
			case changes <- leaderChange{li, present, retired}:
			case <-wctx.Done():
			}
		})
	}()
	defer func() {
		stopWatch()
		<-watchDone
	}()

	var (
		retry    <-chan time.Time // set while the key is gone and our election failed
		vanished time.Time        // when the leader key was seen gone
		lastLead whisk.LeaderInfo
		probe    <-chan time.Time
		strikes  int
		first    = true // the watch's first report
	)
	if s.cfg.HandOver {
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		probe = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-probe:
			if lastLead.Addr == "" || retry != nil {
				continue
			}
			if !refuses(ctx, lastLead.Addr) {
				strikes = 0
				continue
			}
			if strikes++; strikes < probeStrikes {
				continue
			}
			strikes = 0
			dctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
			deposed, err := s.d.Handovers.DeposeLeader(dctx, f, lastLead)
			cancel()
			if err != nil || deposed {
				s.log.Warn("scheduler: the leader's process is gone; deposed its leader key", "action", f.String(),
					"leader", lastLead.SchedulerID, "deposed", deposed, "err", err)
			}
			continue // the watch reports the key gone: electing follows
		case err := <-watchDone:
			watchDone <- err // for the deferred wait
			if ctx.Err() == nil {
				s.log.Warn("scheduler: the leader watch ended; no longer following", "action", f.String(), "err", err)
			}
			return
		case c := <-changes:
			retry = nil
			wasFirst := first
			first = false
			switch {
			case c.present && c.li.SchedulerID == s.cfg.ID:
				return // this scheduler leads (unfollow is on its way)
			case c.present:
				lastLead = c.li
				continue
			case c.retired:
				s.log.Info("scheduler: the leader retired the queue; no longer following", "action", f.String(), "leader", c.li.SchedulerID)
				return
			case wasFirst && s.retiredBefore(ctx, f):
				s.log.Info("scheduler: the leader retired the queue before the watch began; no longer following", "action", f.String())
				return
			}
			lastLead = c.li
			vanished = time.Now()
			s.log.Warn("scheduler: the leader key vanished; electing", "action", f.String(), "leader", c.li.SchedulerID)
		case <-retry:
			retry = nil
		}
		s.mu.RLock()
		meta := fl.meta
		s.mu.RUnlock()
		resp, err := s.createQueue(ctx, meta, false)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("scheduler: a follower's election failed; retrying", "action", f.String(), "err", err, "in", takeoverRetry)
			retry = time.After(takeoverRetry)
		case resp.Leader.SchedulerID == s.cfg.ID:
			s.stats.failovers.Add(1)
			s.log.Info("scheduler: follower took over the queue", "action", f.String(),
				"from", lastLead.SchedulerID, "afterKeyGone", time.Since(vanished).Round(time.Millisecond))
			return
		default:
			s.log.Info("scheduler: another follower took over; following it", "action", f.String(), "leader", resp.Leader.SchedulerID)
		}
	}
}

// retiredBefore reports whether f's queue was retired before this
// follower's watch began: its first read found no leader key, and the
// follower key this scheduler wrote just before is gone too (RetireQueue
// deletes them together; a leader that died leaves the follower keys).
// A failed read answers false: electing a retired queue costs an idle
// queue, not an activation.
func (s *Scheduler) retiredBefore(ctx context.Context, f whisk.FQN) bool {
	rctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	fs, err := s.d.Client.Followers(rctx, f)
	if err != nil {
		return false
	}
	return !slices.ContainsFunc(fs, func(li whisk.LeaderInfo) bool { return li.SchedulerID == s.cfg.ID })
}

// refuses reports whether a TCP connection to addr is refused (nothing
// listens there: the process is gone); a timeout or any other failure is
// not taken as proof.
func refuses(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: probeEvery}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		_ = c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// goRecruit recruits meta's followers on a goroutine of the scheduler's.
func (s *Scheduler) goRecruit(meta whisk.ActionMeta) {
	if s.cfg.Followers <= 0 {
		return
	}
	s.mu.Lock()
	ctx := s.runCtx
	if ctx == nil || s.stopping {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.recruit(ctx, meta, nil)
	}()
}

// checkFollowers recruits missing followers for every live local queue.
func (s *Scheduler) checkFollowers(ctx context.Context) {
	s.mu.RLock()
	var metas []whisk.ActionMeta
	for _, e := range s.queues {
		if e.live() {
			metas = append(metas, e.meta)
		}
	}
	s.mu.RUnlock()
	if len(metas) == 0 {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	ss, err := s.d.Client.Schedulers(lctx)
	cancel()
	if err != nil {
		s.log.Warn("scheduler: reading schedulers to check followers", "err", err)
		return
	}
	for _, m := range metas {
		if ctx.Err() != nil {
			return
		}
		s.recruit(ctx, m, ss)
	}
}

// recruit asks other schedulers, fewest queues first, to follow meta's
// queue until it has Config.Followers followers (or no candidate is left).
// ss, when given, is the schedulers as read by the caller.
func (s *Scheduler) recruit(ctx context.Context, meta whisk.ActionMeta, ss []whisk.SchedulerInfo) {
	f := meta.FQN()
	lctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	have, err := s.d.Client.Followers(lctx, f)
	if err == nil && ss == nil {
		ss, err = s.d.Client.Schedulers(lctx)
	}
	if err != nil {
		s.log.Warn("scheduler: reading followers to recruit", "action", f.String(), "err", err)
		return
	}
	following := map[string]bool{}
	for _, li := range have {
		if li.SchedulerID != s.cfg.ID {
			following[li.SchedulerID] = true
		}
	}
	need := s.cfg.Followers - len(following)
	if need <= 0 {
		return
	}
	cands := slices.DeleteFunc(slices.Clone(ss), func(si whisk.SchedulerInfo) bool {
		return si.ID == s.cfg.ID || following[si.ID] || si.Addr == ""
	})
	slices.SortFunc(cands, func(a, b whisk.SchedulerInfo) int {
		return cmp.Or(cmp.Compare(a.Queues, b.Queues), cmp.Compare(a.ID, b.ID))
	})
	for _, c := range cands {
		if need == 0 || ctx.Err() != nil {
			break
		}
		if s.askToFollow(ctx, c, meta) {
			need--
		}
	}
	if need > 0 {
		s.log.Debug("scheduler: fewer followers than configured", "action", f.String(), "missing", need, "candidates", len(cands))
	}
}

// askToFollow asks scheduler c to follow meta's queue; it reports whether
// c follows this scheduler's queue now.
func (s *Scheduler) askToFollow(ctx context.Context, c whisk.SchedulerInfo, meta whisk.ActionMeta) bool {
	cc, err := grpc.NewClient(c.Addr, append(rpc.DialOptions(), grpc.WithTransportCredentials(s.d.Credentials))...)
	if err != nil {
		s.log.Warn("scheduler: dialing a follower", "follower", c.ID, "err", err)
		return false
	}
	defer cc.Close()
	rctx, cancel := context.WithTimeout(ctx, recruitTimeout)
	defer cancel()
	resp, err := rpc.NewClient(cc).CreateQueue(rctx, &rpc.CreateQueueRequest{Action: meta, Role: rpc.RoleFollower})
	if err != nil {
		s.log.Warn("scheduler: asking a scheduler to follow", "action", meta.FQN().String(), "follower", c.ID, "err", err)
		return false
	}
	if resp.Leader.SchedulerID != s.cfg.ID {
		s.log.Info("scheduler: a recruited follower sees another leader", "action", meta.FQN().String(),
			"follower", c.ID, "leader", resp.Leader.SchedulerID)
		return false
	}
	s.log.Debug("scheduler: follower recruited", "action", meta.FQN().String(), "follower", c.ID)
	return true
}
