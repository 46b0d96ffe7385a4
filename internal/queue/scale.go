package queue

// This file turns the counts into containers: decideNow builds the
// Snapshot, Decide (decide.go) decides, and handleResult takes the
// outcome of each creation.

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// decide runs Decide on the last known counts and starts a refresh for the
// next decision; with no counts of the current revision yet, the decision
// waits for them.
func (q *Queue) decide(now time.Time) {
	q.startCount(now)
	if !q.counted || q.provisional {
		q.wantDecide = true
		return
	}
	q.decideNow(now)
}

// decideNow builds the Snapshot from the last known counts, asks Decide
// and does what it says.
func (q *Queue) decideNow(now time.Time) {
	if q.provisional {
		return // no metadata to create a container with
	}
	s := q.snapshot(now, q.lastCount, q.nsCount, q.nsCreating)
	s.CountsRecent = now.Sub(q.countAt) <= 2*q.cfg.Tick
	s.Sharing = q.d.NamespaceShare != nil
	if s.ShareFresh = q.shareIsFresh(now, shareFresh); s.ShareFresh {
		s.ShareCap = q.share.Cap(q.fqn.Name)
		s.FairShare = q.share.FairFor(q.fqn.Name)
	}
	if s.ShareRecent = q.shareIsFresh(now, 2*q.cfg.Tick); s.ShareRecent {
		s.Releasable = q.share.Releasable(q.fqn.Name)
	}
	s.FlushHold = q.st == Flushing && !q.lastAsk.IsZero() && now.Sub(q.lastAsk) < q.cfg.FlushRetry
	s.CreateHold = now.Before(q.holdUntil)
	s.CPUBusyPct = q.cpuPct
	d := Decide(s)
	q.stats.decisions.Add(1)
	if d.Throttle != q.throttled {
		q.throttled = d.Throttle
		q.log.Info("queue: namespace throttling", "on", d.Throttle, "reason", d.Reason)
	}
	switch d.Demand {
	case DemandWant:
		q.wanting = true
	case DemandNone:
		q.wanting = false
	}
	switch {
	case d.Recount:
		q.wantDecide = true
	case d.FailThrottled:
		q.failThrottled(now, s.NsExisting+s.NsInFlight, s.NsLimit)
	case d.Create > 0:
		q.log.Debug("queue: asking for containers", "n", d.Create, "reason", d.Reason,
			"queued", s.Queued, "stale", s.Stale, "existing", s.Existing, "inFlight", s.InFlight, "avg", s.AvgDuration)
		for range d.Create {
			id := newID()
			q.inflight[id] = q.meta.Rev
			q.lastAsk = now
			q.d.Create(CreateRequest{ID: id, Action: q.meta, NamespaceLimit: q.nsLimit, Done: q.CreationDone})
		}
	}
}

func (q *Queue) snapshot(now time.Time, existing, nsContainers, nsCreations int) Snapshot {
	avg := q.avg()
	threshold := StaleThreshold(avg)
	stale := 0
	for _, e := range q.buf { // oldest first: stop at the first fresh one
		if now.Sub(e.enq) < threshold {
			break
		}
		stale++
	}
	return Snapshot{
		State: q.st, Queued: len(q.buf), Stale: stale,
		Existing: existing, InFlight: q.inFlight(),
		NsExisting: max(nsContainers, existing), NsInFlight: max(nsCreations, len(q.inflight)),
		NsLimit: q.nsLimit, ActionLimit: q.meta.Limits.Instances,
		AvgDuration: avg, Concurrency: q.meta.Limits.Concurrency,
		ArrivalRate: q.arrived.perSecond(now),
	}
}

func (q *Queue) addDuration(ms int64) {
	if len(q.durs) < DurationWindow {
		q.durs = append(q.durs, ms)
		return
	}
	q.durs[q.durNext] = ms
	q.durNext = (q.durNext + 1) % DurationWindow
}

// avg is the mean of the last DurationWindow run times; 0 (unknown) until
// minDurations runs have been reported: a container's first run is often
// slower than the rest (its runtime's caches are cold), and the first
// runs of a step load race the creation of its next containers for the
// CPU, so one or two samples overstate the duration by up to 2×.
func (q *Queue) avg() time.Duration {
	if len(q.durs) < minDurations {
		return 0
	}
	var sum int64
	for _, d := range q.durs {
		sum += d
	}
	return time.Duration(sum) * time.Millisecond / time.Duration(len(q.durs))
}

func (q *Queue) handleResult(now time.Time, r *CreationResult) {
	rev, ok := q.inflight[r.ID]
	if !ok {
		return
	}
	delete(q.inflight, r.ID)
	if r.Refused {
		q.log.Debug("queue: creation refused at a limit", "creation", r.ID, "why", r.Error)
		return
	}
	if r.Action.Rev > q.meta.Rev && r.Action.FQN() == q.fqn {
		q.adopt(r.Action) // the invoker found the action changed
	}
	if rev < q.meta.Rev {
		// A creation of an older revision: its container (if any) gets
		// mismatch, and its failure says nothing about the current code.
		q.log.Debug("queue: outcome of an older revision's creation ignored",
			"creation", r.ID, "rev", rev, "current", q.meta.Rev, "ok", r.OK, "err", r.Error)
		q.askIfNone(now)
		return
	}
	if r.OK {
		q.holdUntil = time.Time{}
		q.backoff.Reset()
		q.lastCount++
		q.countGen++
		if q.st == Flushing {
			q.flushDev, q.flushMsg = false, ""
			q.setState(Running)
		}
		return
	}
	if !r.Developer && !now.Before(q.holdUntil) {
		// No room (or a transient failure): back off before asking again,
		// rather than ask every tick while no invoker has room; the
		// failures of one round of creations count once.
		q.holdUntil = now.Add(q.backoff.Next())
	}
	q.d.Warnings.Warn(q.log, "creation failed", "queue: container creation failed", "creation", r.ID, "developer", r.Developer, "err", r.Error)
	if q.lastCount > 0 || (q.st != Running && q.st != Flushing) {
		return // containers exist and drain the queue
	}
	msg := r.Error
	if msg == "" {
		msg = whisk.MsgNoContainer
	}
	q.flushDev, q.flushMsg = r.Developer, msg
	q.setState(Flushing)
	if r.Developer {
		q.failAll(now, whisk.StatusDeveloperError, msg)
	}
}

// askIfNone decides at once when activations wait and no container of the
// current revision is known or coming: a cold start does not wait for the
// next tick as well.
func (q *Queue) askIfNone(now time.Time) {
	if q.st == Running && len(q.buf) > 0 && q.lastCount == 0 && q.inFlight() == 0 {
		q.decide(now)
	}
}

// inFlight is the number of creations in flight for the current revision.
func (q *Queue) inFlight() int {
	n := 0
	for _, rev := range q.inflight {
		if rev >= q.meta.Rev {
			n++
		}
	}
	return n
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
