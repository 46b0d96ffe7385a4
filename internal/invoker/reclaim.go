package invoker

// Reclaiming idle warm containers (OpenWhisk's ContainerPool.remove): a
// creation that finds too little free memory removes idle stem cells, then
// warm containers that run no activation, least recently used first, of
// any action and any namespace, before it is refused; and a creation with
// ContainerCreation.SwapNamespace (its namespace is at its container
// limit) first removes one idle warm container of that namespace. Either
// way the removal is all or nothing: when the free memory and what could
// be removed do not cover the creation, nothing is removed.
//
// A warm container in service is on the pool's list (enlist) from the
// moment its proxy serves until it stops. Its proxy reports when it runs
// activations (activity) and when a fetch came back empty (markIdle: no
// work for a whole park): such a container is idle, and its memory is
// published (InvokerInfo.IdleMemory, Idle by namespace) so that schedulers
// count it as room. A victim's parked fetch is cancelled (clear), then its
// proxy stops as after an idle timeout (a last fetch with Alive false,
// removal, deregistration), and
// its memory goes to the creation that removed it, not back to the free
// memory, so the backend never holds more than the budget. If the victim
// took an activation just as it was picked, it runs it first: nothing is
// cut short.

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// reclaimState is what the pool knows of one proxy; guarded by the
// invoker's mu.
type reclaimState struct {
	listed   bool      // in service: a candidate while it runs nothing
	active   int       // activations running (every slot)
	idle     bool      // a fetch came back empty and nothing ran since
	lastUsed time.Time // when its last activation ended (or it started)
	evicted  bool      // picked as a victim: it stops, its memory handed over
	cancel   context.CancelFunc
}

// enlist puts p on the pool's list: it serves from now on.
func (inv *Invoker) enlist(p *proxy) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	p.rc.listed = true
	p.rc.lastUsed = inv.now()
	inv.warm[p] = struct{}{}
}

// delist takes p off the list: it stops (evicted or not).
func (inv *Invoker) delist(p *proxy) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if !p.rc.listed {
		return
	}
	p.rc.listed = false
	delete(inv.warm, p)
	if p.rc.idle {
		p.rc.idle = false
		inv.memoryChanged()
	}
}

// activity counts an activation of p starting (+1) or ending (-1).
func (inv *Invoker) activity(p *proxy, delta int) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	p.rc.active += delta
	p.rc.lastUsed = inv.now()
	if p.rc.idle {
		p.rc.idle = false
		inv.memoryChanged()
	}
}

// markIdle records that p's fetch came back empty while it ran nothing.
func (inv *Invoker) markIdle(p *proxy) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if p.rc.listed && p.rc.active == 0 && !p.rc.idle && !p.rc.evicted {
		p.rc.idle = true
		inv.memoryChanged()
	}
}

// evicted reports whether p was picked to make room.
func (p *proxy) evicted() bool {
	p.inv.mu.Lock()
	defer p.inv.mu.Unlock()
	return p.rc.evicted
}

// idleLocked sums the idle warm containers' memory and counts them by
// namespace (the registration).
func (inv *Invoker) idleLocked() (mb int64, byNS, byAction map[string]int) {
	now := inv.now()
	for p := range inv.warm {
		if p.isIdleLocked(now) {
			mb += p.memMB
			if byNS == nil {
				byNS, byAction = map[string]int{}, map[string]int{}
			}
			byNS[p.action.Namespace]++
			byAction[p.action.FQN().String()]++
		}
	}
	return mb, byNS, byAction
}

// idleAfter is how long a warm container that runs nothing counts as idle
// even if no fetch of it came back empty yet (its fetches fail or are slow
// to answer on a loaded host).
const idleAfter = time.Second

// isIdleLocked reports whether p is idle: its last fetch came back empty,
// or it has run nothing for idleAfter.
func (p *proxy) isIdleLocked(now time.Time) bool {
	if !p.rc.listed || p.rc.evicted || p.rc.active > 0 {
		return false
	}
	return p.rc.idle || now.Sub(p.rc.lastUsed) >= idleAfter
}

// candidatesLocked lists the warm containers that run nothing (of
// namespace ns, or any when ns is ""), least recently used first.
func (inv *Invoker) candidatesLocked(ns string) []*proxy {
	var out []*proxy
	for p := range inv.warm {
		if p.rc.active == 0 && !p.rc.evicted && (ns == "" || p.action.Namespace == ns) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *proxy) int {
		if c := a.rc.lastUsed.Compare(b.rc.lastUsed); c != 0 {
			return c
		}
		return cmp.Compare(a.ctr.ID(), b.ctr.ID())
	})
	return out
}

// room is what a creation takes to get its memory: from the free memory,
// from stem cells and from warm victims; surplus is what the victims
// brought beyond the need, free once they are gone.
type room struct {
	cells   []*stemCell
	victims []*proxy
	surplus int64
}

// roomLeftLocked is the memory a creation of a new namespace could still
// get: free, idle stem cells, and idle warm containers (as published: a
// busy container between two activations does not count).
func (inv *Invoker) roomLeftLocked() int64 {
	idle, _, _ := inv.idleLocked()
	return inv.free + inv.cells.idleMBLocked() + idle
}

// planLocked finds mb for a creation and, with swapNS, one idle warm
// container of that namespace to remove first; ok is false (and nothing
// is touched) when that is not possible. On success the free memory, the
// stem cells and the victims are taken.
func (inv *Invoker) planLocked(mb int64, swapNS string) (r room, ok bool) {
	var victims []*proxy
	need := mb
	if swapNS != "" {
		c := inv.candidatesLocked(swapNS)
		if len(c) == 0 {
			return room{}, false
		}
		victims = append(victims, c[0])
		need -= c[0].memMB
	}
	fromFree := min(max(need, 0), inv.free)
	need -= fromFree
	cellMB := inv.cells.idleMBLocked()
	if need > cellMB {
		// Warm containers of other actions go, least recently used first,
		// until the stem cells cover the rest.
		for _, p := range inv.candidatesLocked("") {
			if need <= cellMB {
				break
			}
			if slices.Contains(victims, p) {
				continue
			}
			victims = append(victims, p)
			need -= p.memMB
		}
		if need > cellMB {
			return room{}, false
		}
	}
	var got int64
	if need > 0 {
		r.cells, got = inv.cells.evictLocked(need)
		if r.cells == nil {
			return room{}, false
		}
	}
	inv.free -= fromFree
	var warmMB int64
	for _, p := range victims {
		p.rc.evicted = true
		p.rc.idle = false
		p.rc.cancel() // its parked fetch ends now (see clear)
		warmMB += p.memMB
	}
	r.victims = victims
	r.surplus = fromFree + got + warmMB - mb
	inv.memoryChanged()
	return r, true
}

// clear removes what plan took: stem cells at once, victims by stopping
// their proxies (waiting until each is removed and deregistered); then
// the surplus is free. plan cancelled a victim's fetch parked at its
// queue, so the victim stops at once rather than after the queue's park
// time (which the creation waited for, ~1 s). A queue that answered that
// fetch with an activation just as it was cancelled learns it from the
// victim's last fetch (Alive false), which numbers the cancelled call
// among its unanswered ones: the queue hands the activation out again
// (internal/queue, unanswered.go). A victim that got its answer runs it,
// then stops (serve checks evicted before each fetch).
func (inv *Invoker) clear(r room) {
	for _, c := range r.cells {
		inv.destroyStemCell(c, "a container needs the memory")
	}
	for _, p := range r.victims {
		<-p.done
	}
	if len(r.victims) > 0 {
		inv.log.Info("reclaimed idle warm containers", "n", len(r.victims))
	}
	if r.surplus > 0 {
		inv.release(r.surplus)
	}
}
