package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/lograte"
	"github.com/eddy-faas/eddy/internal/queue"
	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/whisk"
)

const (
	// maxRetries is how often a retryable creation failure is retried, on
	// another invoker when there is one, after 100 ms·2^n.
	maxRetries = 5
	// maxAdmitConflicts bounds the recounts of one creation whose
	// admission lost to other schedulers' (cluster.Session.PutCreation).
	maxAdmitConflicts = 20
	// reserveWindow is how long memory this scheduler asked of an invoker
	// is subtracted from what the invoker advertises, covering the delay
	// before the invoker's own free-memory update reaches etcd, when no
	// ack comes sooner.
	reserveWindow = 3 * time.Second
	// settleWindow is how long a reservation is kept once its container's
	// ack came. The invoker advertises the memory as taken when it takes
	// it, before it creates the container, so by the ack the advertisement
	// is written and on its way to this scheduler: keeping the reservation
	// the whole reserveWindow counted the memory twice, and a storm of
	// cold starts (8 at once, ~10 a second) found "no invoker" with a
	// quarter of the invoker's memory free.
	settleWindow = 250 * time.Millisecond
	// headroomShare is the part of each invoker's memory that a namespace
	// already holding containers may not take: it stays for namespaces
	// that hold none, so that another tenant's first call gets a container
	// within one cold start while one tenant floods (docs/internals.md
	// "Capacity"). Idle warm containers count as room (the invoker
	// reclaims them).
	headroomShare = 8
)

var (
	errNoInvoker = errors.New("no invoker has enough free memory")
	// errHeadroom: invokers have room, but only the headroom kept for
	// namespaces that hold no container yet (a refusal, not a failure).
	errHeadroom = errors.New("only the headroom kept for other namespaces is free")
)

// creator runs creation jobs: one goroutine per requested container, from
// invoker choice to the invoker's ack or the creation timeout.
//
// Invoker choice: among invokers that are up and have the action's memory
// free, the one with the most free memory, where free memory is what the
// invoker advertises minus what this scheduler asked of it in the last
// reserveWindow. Most-free spreads containers over invokers (one invoker's
// loss hurts least, and image pulls and cold starts run in parallel) and
// the reservations stop a burst of requests from all landing on the one
// invoker whose advertisement has not caught up. A retry prefers invokers
// not tried yet by the job.
type creator struct {
	s *Scheduler

	mu       sync.Mutex
	jobs     map[string]chan whisk.CreationAck // creation id → its job's acks
	reserved map[string][]reservation          // invoker id → recent requests
	nsLocks  map[string]*sync.Mutex            // namespace → admission lock
	warn     *lograte.Limiter                  // repeated warnings, once per interval
}

// errRefused is admit's answer when a limit leaves no room.
var errRefused = errors.New("refused at a limit")

type reservation struct {
	id     string // the creation's
	mb     int64
	at     time.Time
	swapNS string // a swap: one of the namespace's idle containers is taken
	// kept: made under a headroom (the creation's namespace holds
	// containers): the invoker refuses it unless the headroom stays free,
	// so it never takes the memory a namespace holding none may use.
	kept bool
}

func newCreator(s *Scheduler) *creator {
	w := s.warn
	if w == nil {
		w = lograte.New(0, s.d.Now)
	}
	return &creator{s: s, jobs: map[string]chan whisk.CreationAck{}, reserved: map[string][]reservation{},
		nsLocks: map[string]*sync.Mutex{}, warn: w}
}

// start runs a creation job for a queue. It never blocks and never calls
// req.Done on the caller's goroutine.
func (c *creator) start(req queue.CreateRequest) {
	s := c.s
	s.mu.Lock()
	ctx := s.runCtx
	if ctx == nil || s.stopping {
		s.mu.Unlock()
		go req.Done(queue.CreationResult{ID: req.ID, Error: "the scheduler is stopping"})
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	acks := make(chan whisk.CreationAck, 4)
	c.mu.Lock()
	c.jobs[req.ID] = acks
	c.mu.Unlock()
	go func() {
		defer s.wg.Done()
		res := c.run(ctx, req, acks)
		c.mu.Lock()
		delete(c.jobs, req.ID)
		c.mu.Unlock()
		req.Done(res)
	}()
}

func (c *creator) run(ctx context.Context, req queue.CreateRequest, acks <-chan whisk.CreationAck) queue.CreationResult {
	s := c.s
	meta := req.Action
	mem := meta.Limits.Memory
	if mem <= 0 {
		mem = whisk.DefaultSystemLimits().DefaultMemory
	}
	log := s.log.With("action", meta.FQN().String(), "creation", req.ID)
	fail := func(msg string) queue.CreationResult { return queue.CreationResult{ID: req.ID, Error: msg} }
	refused := func(msg string) queue.CreationResult {
		return queue.CreationResult{ID: req.ID, Refused: true, Error: msg}
	}
	tried := map[string]bool{}
	lastErr := ""
	conflicts, recount := 0, false
	backoff := retry.New(100*time.Millisecond, 100*time.Millisecond<<(maxRetries-1))
	for attempt := 0; attempt <= maxRetries; attempt++ {
		if attempt > 0 && !recount && !backoff.Wait(ctx) {
			return fail("the scheduler is stopping")
		}
		recount = false
		invs, err := s.d.Client.Invokers(ctx)
		if err != nil {
			c.warn.Warn(log, "invokers", "scheduler: reading the invokers", "err", err)
			lastErr = err.Error()
			continue
		}
		unlock, held, swap, countedAt, err := c.admit(ctx, meta, req.NamespaceLimit, invs)
		if errors.Is(err, errRefused) {
			log.Debug("scheduler: creation refused", "err", err)
			return refused(err.Error())
		}
		if err != nil {
			c.warn.Warn(log, "count", "scheduler: counting the namespace before a creation", "err", err)
			lastErr = err.Error()
			continue
		}
		swapNS := ""
		if swap {
			swapNS = meta.Namespace
		}
		iid, headroom, err := c.pick(req.ID, mem, tried, invs, held, swapNS)
		if err != nil {
			unlock()
			if errors.Is(err, errHeadroom) {
				log.Debug("scheduler: creation refused", "err", err)
				return refused(err.Error())
			}
			// No room anywhere: the queue keeps its activations (Flushing)
			// and asks again later, backing off.
			c.warn.Warn(log, "no invoker", "scheduler: no invoker for a container", "memoryMB", mem, "err", err)
			return fail(fmt.Sprintf("No invoker can host a container of %d MB.", mem))
		}
		now := s.d.Now()
		info := whisk.CreationInfo{
			Namespace: meta.Namespace, Action: meta.Name, Rev: meta.Rev,
			SchedulerID: s.cfg.ID, CreationID: req.ID, InvokerID: iid, Requested: now.UnixMilli(),
		}
		admitted, err := s.d.Session.PutCreation(ctx, info, countedAt)
		unlock()
		if err == nil && !admitted {
			// Another scheduler admitted a creation of the namespace since
			// we counted: count again at once (not a failed attempt).
			c.unreserve(iid, req.ID)
			if conflicts++; conflicts <= maxAdmitConflicts {
				attempt-- // the same attempt, at once
				recount = true
				continue
			}
			err = errors.New("admission kept conflicting with other schedulers'")
		}
		if err != nil {
			c.warn.Warn(log, "creation key", "scheduler: writing the creation key", "err", err)
			c.unreserve(iid, req.ID)
			// The session remembers the key even when the write failed
			// (and would put it again after a lease re-grant): forget it,
			// this creation never happened. Before the next attempt puts
			// the same key again.
			c.deleteCreation(ctx, info, true)
			lastErr = err.Error()
			continue
		}
		msg, _ := json.Marshal(whisk.ContainerCreation{
			CreationID: req.ID, Action: meta, SchedulerID: s.cfg.ID, SchedulerAddr: s.cfg.Addr,
			Retry: attempt, Requested: now.UnixMilli(), SwapNamespace: swapNS, Headroom: headroom,
		})
		if err := s.d.Bus.Publish(ctx, whisk.InvokerTopic(iid), msg); err != nil {
			c.warn.Warn(log, "publish", "scheduler: sending the creation", "invoker", iid, "err", err)
			c.unreserve(iid, req.ID)
			c.deleteCreation(ctx, info, true)
			tried[iid] = true
			lastErr = err.Error()
			continue
		}
		ack, ok := c.await(ctx, acks, iid)
		c.deleteCreation(ctx, info, false)
		if ctx.Err() != nil {
			return fail("the scheduler is stopping")
		}
		if !ok || ack.Error != "" {
			// No container came of this attempt: its memory is not taken
			// on the invoker (a retry may pick it again).
			c.unreserve(iid, req.ID)
		}
		if !ok {
			log.Warn("scheduler: creation timed out", "invoker", iid, "timeout", s.cfg.CreationTimeout)
			return fail("Container creation timed out.")
		}
		if ack.Error == "" {
			c.settle(iid, req.ID, s.d.Now())
			log.Debug("container created", "invoker", iid, "container", ack.ContainerID, "swap", swap)
			return queue.CreationResult{ID: req.ID, OK: true}
		}
		if swap || ack.Error == whisk.MsgHeadroom {
			// The namespace's idle container was taken meanwhile (still at
			// the limit), or only the headroom is left.
			log.Debug("scheduler: swap refused", "invoker", iid, "err", ack.Error)
			return refused(ack.Error)
		}
		c.warn.Warn(log, "creation failed", "scheduler: creation failed", "invoker", iid, "err", ack.Error, "developer", ack.Developer, "retryable", ack.Retryable)
		if ack.Action.Rev > meta.Rev && ack.Action.FQN() == meta.FQN() {
			// The action changed under the creation: not the new code's
			// fault. The queue adopts the newer revision the ack carries.
			return queue.CreationResult{ID: req.ID, Error: ack.Error, Action: ack.Action}
		}
		if ack.Developer {
			return queue.CreationResult{ID: req.ID, Developer: true, Error: ack.Error}
		}
		if !ack.Retryable {
			return fail(ack.Error)
		}
		tried[iid] = true
		lastErr = ack.Error
	}
	return fail(lastErr)
}

// admit is the last check of the limits before a creation key is written:
// with the namespace's admission lock held, a fresh count of what the
// namespace and the action use (containers + creations, from etcd) must
// leave room under the namespace limit and the action's instances limit.
// The caller writes the creation key and then calls unlock, so this
// scheduler's creations of a namespace are admitted one at a time, each
// counting the keys of the ones before: the queues' decisions use counts
// up to one refresh old, and two actions of a namespace (or one action's
// successive ticks) deciding on the same old counts would over-commit the
// namespace. A namespace at its limit that has an idle warm container on
// an invoker (invs, less the swaps this scheduler sent there lately) is
// admitted as a swap: the invoker removes that container first. held is
// what the namespace uses. errRefused when a limit leaves no room; another
// error when the count failed (the attempt is retried).
func (c *creator) admit(ctx context.Context, meta whisk.ActionMeta, nsLimit int, invs []whisk.InvokerInfo) (unlock func(), held int, swap bool, at int64, err error) {
	uc := c.s.d.Client
	inst := meta.Limits.Instances
	c.mu.Lock()
	l := c.nsLocks[meta.Namespace]
	if l == nil {
		l = &sync.Mutex{}
		c.nsLocks[meta.Namespace] = l
	}
	c.mu.Unlock()
	l.Lock()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ns, act, at, err := uc.CountUsed(cctx, meta.FQN(), meta.Rev)
	cancel()
	switch {
	case err != nil:
		l.Unlock()
		return nil, 0, false, 0, err
	case inst > 0 && act >= inst:
		l.Unlock()
		return nil, ns, false, 0, fmt.Errorf("%w: action %s uses %d of %d instances", errRefused, meta.FQN(), act, inst)
	case nsLimit > 0 && ns >= nsLimit:
		if c.idleOf(invs, meta.Namespace) > 0 {
			return l.Unlock, ns, true, at, nil
		}
		l.Unlock()
		return nil, ns, false, 0, fmt.Errorf("%w: namespace %s uses %d of %d containers", errRefused, meta.Namespace, ns, nsLimit)
	}
	return l.Unlock, ns, false, at, nil
}

// idleOf is how many idle warm containers of ns the invokers publish, less
// the swaps this scheduler sent lately (not yet seen in the invokers'
// registrations).
func (c *creator) idleOf(invs []whisk.InvokerInfo, ns string) int {
	now := c.s.d.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, inv := range invs {
		if inv.Status == whisk.InvokerUp {
			n += max(0, inv.Idle[ns]-c.swapsLocked(inv.ID, ns, now))
		}
	}
	return n
}

func (c *creator) swapsLocked(iid, ns string, now time.Time) int {
	n := 0
	for _, r := range c.reserved[iid] {
		if r.swapNS == ns && now.Sub(r.at) < reserveWindow {
			n++
		}
	}
	return n
}

// await waits for the ack of the current attempt (acks of earlier attempts
// on other invokers are ignored); false on timeout or the end of ctx.
func (c *creator) await(ctx context.Context, acks <-chan whisk.CreationAck, iid string) (whisk.CreationAck, bool) {
	t := time.NewTimer(c.s.cfg.CreationTimeout)
	defer t.Stop()
	for {
		select {
		case ack := <-acks:
			if ack.InvokerID != "" && ack.InvokerID != iid {
				continue
			}
			return ack, true
		case <-t.C:
			return whisk.CreationAck{}, false
		case <-ctx.Done():
			return whisk.CreationAck{}, false
		}
	}
}

// deleteCreation deletes a creation key (and makes the session forget it).
// A failed delete is retried with backoff until it succeeds or the
// scheduler stops (the key then goes with the lease): before returning
// when wait is set (the job's next attempt puts the same key again), else
// in the background, so the job's final outcome is not held up.
func (c *creator) deleteCreation(ctx context.Context, info whisk.CreationInfo, wait bool) {
	if c.tryDelete(ctx, info) {
		return
	}
	again := func() {
		backoff := retry.New(100*time.Millisecond, 2*time.Second)
		for {
			if !backoff.Wait(ctx) || c.tryDelete(ctx, info) {
				return
			}
		}
	}
	if wait {
		again()
		return
	}
	c.s.wg.Add(1) // the calling job holds the group open
	go func() {
		defer c.s.wg.Done()
		again()
	}()
}

func (c *creator) tryDelete(ctx context.Context, info whisk.CreationInfo) bool {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := c.s.d.Session.DeleteCreation(dctx, info); err != nil {
		c.s.log.Warn("scheduler: deleting the creation key", "creation", info.CreationID, "err", err)
		return false
	}
	return true
}

// pick chooses an invoker (see creator) and reserves the memory on it.
// Invokers whose free memory (with idle stem cells) covers the container
// come first; then those where idle warm containers would have to be
// removed (Reclaimable). A namespace that already uses containers (held >
// 0) must leave each invoker's headroom (UserMemory / headroomShare) free;
// errHeadroom when only that stopped it. The headroom it returns goes in
// the creation message: the invoker, which knows its memory first hand,
// holds it too (this scheduler's view may be stale). A swap (swapNS) goes to an
// invoker that publishes an idle container of the namespace, the most
// such first.
func (c *creator) pick(id string, memMB int64, tried map[string]bool, invs []whisk.InvokerInfo, held int, swapNS string) (iid string, headroom int64, err error) {
	now := c.s.d.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	type cand struct {
		id      string
		tier    int // 0: free memory; 1: reclaiming idle warm containers
		tried   bool
		room    int64 // the headroom the invoker must keep
		free    int64
		idleSwp int
	}
	better := func(a, b cand) bool {
		if a.tried != b.tried {
			return !a.tried
		}
		if a.idleSwp != b.idleSwp {
			return a.idleSwp > b.idleSwp
		}
		if a.tier != b.tier {
			return a.tier < b.tier
		}
		if a.free != b.free {
			return a.free > b.free
		}
		return a.id < b.id
	}
	var best *cand
	headroomOnly := false
	for _, inv := range invs {
		if inv.Status != whisk.InvokerUp {
			continue
		}
		x := cand{id: inv.ID, tried: tried[inv.ID]}
		if held > 0 && swapNS == "" {
			x.room = inv.UserMemory / headroomShare
		}
		// A namespace holding none (x.room 0) may have the headroom, and
		// the creations in flight of namespaces that must leave it free
		// cannot have taken it: they count only against the memory above
		// it (while one namespace floods, its creations are nearly always
		// in flight, and counted in full they kept the newcomer out).
		resFree, resKept := c.reservedLocked(inv.ID, now)
		left := func(m int64) int64 { return m - resFree - resKept }
		if x.room == 0 && swapNS == "" {
			h := inv.UserMemory / headroomShare
			left = func(m int64) int64 { return m - resFree - min(resKept, max(0, m-h)) }
		}
		if swapNS != "" {
			x.idleSwp = inv.Idle[swapNS] - c.swapsLocked(inv.ID, swapNS, now)
			if x.idleSwp <= 0 {
				continue
			}
		}
		avail, recl := left(inv.Available()), left(inv.Reclaimable()) // idle stem cells give way
		headroom := x.room
		switch {
		case avail >= memMB+headroom:
			x.free = avail
		case recl >= memMB+headroom:
			x.tier, x.free = 1, recl
		default:
			if recl >= memMB {
				headroomOnly = true
			}
			continue
		}
		if best == nil || better(x, *best) {
			best = &x
		}
	}
	if best == nil {
		if headroomOnly {
			return "", 0, errHeadroom
		}
		return "", 0, errNoInvoker
	}
	c.reserved[best.id] = append(c.reserved[best.id], reservation{id: id, mb: memMB, at: now, swapNS: swapNS, kept: best.room > 0})
	return best.id, best.room, nil
}

// unreserve drops creation id's reservation on invoker iid: the attempt
// that made it created no container.
func (c *creator) unreserve(iid, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.reserved[iid]
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].id == id {
			c.reserved[iid] = append(rs[:i], rs[i+1:]...)
			return
		}
	}
}

// settle shortens creation id's reservation on invoker iid to settleWindow
// from now: its container was created, and the invoker's advertisement
// already counts its memory.
func (c *creator) settle(iid, id string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range c.reserved[iid] {
		if r.id == id {
			if at := now.Add(settleWindow - reserveWindow); at.Before(r.at) {
				c.reserved[iid][i].at = at
			}
			return
		}
	}
}

// reservedLocked sums the memory this scheduler's recent creations
// reserved on invoker iid (dropping expired reservations): those that may
// take the headroom (free), and those made under it (kept).
func (c *creator) reservedLocked(iid string, now time.Time) (free, kept int64) {
	rs := c.reserved[iid]
	keep := rs[:0]
	for _, r := range rs {
		if now.Sub(r.at) < reserveWindow {
			keep = append(keep, r)
			if r.kept {
				kept += r.mb
			} else {
				free += r.mb
			}
		}
	}
	if len(keep) == 0 {
		delete(c.reserved, iid)
	} else {
		c.reserved[iid] = keep
	}
	return free, kept
}

// resubscribe subscribes to the ack topic until it works; nil when ctx
// ended first (then nothing is left to close).
func (c *creator) resubscribe(ctx context.Context, subscribe func(context.Context) (bus.Consumer, error)) bus.Consumer {
	backoff := retry.New(100*time.Millisecond, 2*time.Second)
	for {
		cons, err := subscribe(ctx)
		if err == nil {
			c.s.log.Info("scheduler: consuming creation acks again")
			return cons
		}
		c.s.log.Warn("scheduler: subscribing to creation acks; retrying", "err", err)
		if !retry.Sleep(ctx, backoff.Next()) {
			return nil
		}
	}
}

// consumeAcks reads the scheduler's creation-ack topic and hands each ack
// to its job; acks of unknown creations (an earlier life, a timed-out job)
// are dropped. Acks are committed as they are read: a lost ack costs a
// creation timeout, not an activation. A consumer the bus no longer serves
// (the group gave its partition away after this process was paused or cut
// off longer than the session timeout: kind Conflict; or it was closed:
// Invalid) is closed and subscribed anew, so the scheduler never stays
// half alive without acks. It closes the consumer it holds when ctx ends.
func (c *creator) consumeAcks(ctx context.Context, cons bus.Consumer, subscribe func(context.Context) (bus.Consumer, error)) {
	defer func() {
		if cons != nil {
			_ = cons.Close()
		}
	}()
	for {
		recs, err := cons.Poll(ctx, 128)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if whisk.IsKind(err, whisk.Conflict) || whisk.IsKind(err, whisk.Invalid) {
				c.s.log.Warn("scheduler: the creation-ack consumer was fenced off; subscribing again", "err", err)
				_ = cons.Close()
				if cons = c.resubscribe(ctx, subscribe); cons == nil {
					return
				}
				continue
			}
			c.s.log.Warn("scheduler: polling creation acks", "err", err)
			if !retry.Sleep(ctx, time.Second) {
				return
			}
			continue
		}
		for _, r := range recs {
			var ack whisk.CreationAck
			if err := json.Unmarshal(r.Value, &ack); err != nil {
				c.s.log.Warn("scheduler: undecodable creation ack", "offset", r.Offset, "err", err)
				continue
			}
			c.mu.Lock()
			ch := c.jobs[ack.CreationID]
			c.mu.Unlock()
			if ch == nil {
				continue
			}
			select {
			case ch <- ack:
			default:
			}
		}
		if len(recs) > 0 {
			if err := cons.Commit(ctx, recs[len(recs)-1].Offset); err != nil && ctx.Err() == nil {
				c.s.log.Warn("scheduler: committing creation acks", "err", err)
			}
		}
	}
}
