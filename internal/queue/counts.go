package queue

// This file is the counts and share reads: etcd reads run off the owner
// goroutine, at most one at a time, and come back to it (handleCount).

import (
	"context"
	"slices"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Sharing the namespace's containers (see Share).
const (
	// ShareEvery is how often a queue that holds containers but has no
	// backlog reads the namespace share, to give back idle containers.
	ShareEvery = time.Second
	// shareFresh is how old a share read may be to act on it.
	shareFresh = 2 * time.Second
	// releaseGrace is how long a container told to go may still be
	// registered (it deregisters once removed): share reads within it
	// count it, so the give-back they compute is reduced by it.
	releaseGrace = 5 * time.Second
)

type countResult struct {
	rev          int64
	gen          int
	at           time.Time // when the count was started
	counts       bool      // the counts were read (else only the share: startShareRead)
	containers   int
	nsContainers int
	nsCreations  int
	cpuPct       int // the invokers' CPU load (Deps.CPUBusy), when read
	err          error
	// The namespace share, when read (shared), and the demand published.
	shared   bool
	partial  bool // a give-back-only read that found no demand: no counts
	held     map[string]int
	wanting  map[string]bool
	shareErr error
	wantSet  bool // Want was called with want
	want     bool
	wantErr  error
}

// startCount refreshes the counts on a helper goroutine, bounded by the
// count timeout; handleCount takes the result. At most one count is in
// flight, so an etcd outage costs one blocked goroutine, never the owner.
func (q *Queue) startCount(now time.Time) { q.startRead(now, true) }

// startShareRead reads the namespace share and publishes or withdraws the
// demand, like startCount but without the counts: a queue with no backlog
// that looks for idle containers to give back (every ShareEvery while it
// holds containers) decides nothing, and its decisions count afresh. With
// nobody wanting a share that is one count-only read of the demand keys.
func (q *Queue) startShareRead(now time.Time) { q.startRead(now, false) }

func (q *Queue) startRead(now time.Time, counts bool) {
	if q.counting {
		return
	}
	q.counting = true
	ctx, rev, gen := q.countCtx, q.meta.Rev, q.countGen
	count, countNs, timeout := q.d.CountContainers, q.d.CountNamespace, q.cfg.CountTimeout
	cpu := q.d.CPUBusy
	share := q.d.NamespaceShare
	giveBackOnly := !q.throttled && !q.wanting && !q.wantPub
	if share != nil && q.lastCount <= 0 && giveBackOnly {
		share = nil // nothing to give back or to ask for
	}
	var want func(context.Context, bool) error
	wantTo := q.wanting
	if q.d.Want != nil && q.wanting != q.wantPub {
		want = q.d.Want
	}
	go func() {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		r := countResult{rev: rev, gen: gen, at: now, counts: counts}
		if want != nil {
			r.wantSet, r.want, r.wantErr = true, wantTo, want(cctx, wantTo)
		}
		if counts {
			r.containers, r.err = count(cctx, rev)
			if r.err == nil {
				r.nsContainers, r.nsCreations, r.err = countNs(cctx)
			}
			if r.err == nil && cpu != nil {
				if pct, err := cpu(cctx); err == nil {
					r.cpuPct = pct
				}
			}
		}
		if share != nil {
			r.held, r.wanting, r.shareErr = share(cctx, giveBackOnly)
			r.shared = r.shareErr == nil
			r.partial = giveBackOnly && r.held == nil
		}
		q.countc <- &r // buffered: one count in flight at most
	}()
}

// handleCount takes a count's result: the counts decisions use, the idle
// queue's removal, and a decision that waited for counts.
func (q *Queue) handleCount(now time.Time, r *countResult) {
	q.counting = false
	want := q.wantDecide
	q.wantDecide = false
	idleDue := q.st == Idle && r.at.Sub(q.idleSince) >= q.cfg.IdleTimeout
	q.takeShare(now, r)
	if !r.counts {
		// A share read only: what waits for counts counts now.
		if want || q.st == Idle && now.Sub(q.idleSince) >= q.cfg.IdleTimeout {
			q.wantDecide = want
			q.startCount(now)
		}
		return
	}
	if r.err != nil {
		q.log.Warn("queue: counting containers", "err", r.err)
		if idleDue {
			q.idleSince = now
		}
		return
	}
	if r.rev != q.meta.Rev {
		return // counted an older revision
	}
	n := r.containers
	if r.gen != q.countGen {
		n = max(n, q.lastCount) // a container showed up after the count began
	}
	q.lastCount, q.nsCount, q.nsCreating, q.counted = n, r.nsContainers, r.nsCreations, true
	q.cpuPct = r.cpuPct
	q.countAt = now
	switch {
	case idleDue && (n > 0 || q.tracksHanded()):
		// Containers are left, or activations a predecessor handed out
		// whose end is not known yet: retiring would forget them, and
		// one a container never got would have no record ever. The lost
		// check ends them first.
		q.idleSince = now
	case idleDue:
		q.why = EndIdle
		q.setState(Removed)
	case q.st == Idle && now.Sub(q.idleSince) >= q.cfg.IdleTimeout:
		q.startCount(now) // this count began before the idle timeout: count again
	case want && len(q.buf) > 0 && (q.st == Running || q.st == Flushing):
		q.decideNow(now)
	}
}

// takeShare takes a count's share read and demand publication: the
// give-back is recomputed from each read, less the containers told to go
// in the last releaseGrace (the read may still count them: a container
// deregisters once removed), and idle (parked) containers go first.
func (q *Queue) takeShare(now time.Time, r *countResult) {
	if r.wantSet {
		if r.wantErr != nil {
			q.log.Warn("queue: publishing the namespace share demand", "want", r.want, "err", r.wantErr)
		} else {
			q.wantPub = r.want
		}
	}
	if r.shareErr != nil {
		q.log.Warn("queue: reading the namespace share", "err", r.shareErr)
	}
	if !r.shared {
		return
	}
	q.share = Share{Limit: q.nsLimit, Held: r.held, Wanting: r.wanting}
	q.shareAt = now
	// A give-back-only read that found nobody wanting carries no counts:
	// nothing to give back, and nothing to decide on (shareIsFresh).
	q.sharePartial = r.partial
	q.releasedAt = slices.DeleteFunc(q.releasedAt, func(at time.Time) bool { return now.Sub(at) >= releaseGrace })
	n := max(0, q.share.GiveBack(q.fqn.Name)-len(q.releasedAt))
	if n != q.release && n > 0 {
		q.log.Info("queue: giving containers back to the namespace", "n", n,
			"fairShare", q.share.Fair(), "held", q.share.Held[q.fqn.Name], "limit", q.share.Limit)
	}
	q.release = n
	for q.release > 0 && len(q.parked) > 0 {
		f := q.parked[len(q.parked)-1] // the newest parked: the others may get work
		q.parked = q.parked[:len(q.parked)-1]
		q.releaseTo(now, f)
	}
}

// releaseTo tells a fetching container to go: the namespace needs it for
// another action. It deregisters and says so with a last fetch (Alive
// false), which lowers the count.
func (q *Queue) releaseTo(now time.Time, f *fetch) {
	q.release--
	q.released++
	q.releasedAt = append(q.releasedAt, now)
	f.reply <- &whisk.FetchResponse{Status: whisk.FetchRelease}
}

// shareFresh reports whether the last share read may be acted on.
func (q *Queue) shareIsFresh(now time.Time, within time.Duration) bool {
	return q.d.NamespaceShare != nil && !q.shareAt.IsZero() && !q.sharePartial && now.Sub(q.shareAt) <= within
}
