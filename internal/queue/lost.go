package queue

import (
	"context"
	"slices"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Activations lost with their container (issue 5: "activations that were
// handed out when the container's invoker died get an error record, never
// silence").
//
// The queue is the one party that knows which activations it handed to
// which container. It remembers, per container, the activations it handed
// that may still be running: the action's concurrency limit of them,
// because a container fetches only with a free slot, so a hand-off beyond
// the limit proves the oldest one finished; and keepFinished more of those
// that finished, because a finished activation's record may still sit in
// its invoker's record writer when the invoker dies. Two things make it
// act on them, both off the owner goroutine:
//
//   - ContainerGone (the scheduler watches container keys, which live under
//     their invoker's lease): after Config.GoneGrace, unless the container
//     fetched again or its invoker is still registered (Deps.InvokerAlive:
//     a living invoker records what its containers ran, and re-registers
//     them after a lease re-grant), every remembered activation of it that
//     has no record (Deps.Recorded) gets a "whisk internal error" record
//     naming the invoker and the container, and its completion goes to the
//     controller that waits.
//   - The safety net: a remembered activation with no record
//     Config.LostAfter past its action's time limit (and the init limit, if
//     the container was cold) gets such a record too (a missed watch event,
//     an invoker that hangs or cannot write).
//
// A recorded activation is forgotten. The store keeps the first record of
// an activation (store.Store.PutActivation), so a record of the invoker
// that lands between the check and the queue's write wins, and the queue's
// is dropped; one that lands after it (a partitioned invoker's) is dropped.

// Defaults of the lost-activation checks.
const (
	// DefaultGoneGrace is how long after a container's key vanished the
	// queue waits before it fails what the container had not finished:
	// time for a record in flight to land, and for an invoker that got a
	// new lease to register the container again.
	DefaultGoneGrace = 2 * time.Second
	// DefaultLostAfter is the safety net's margin past the action's limits.
	DefaultLostAfter = 60 * time.Second
	// initAllowance is the init time a cold container may add to a run
	// (OpenWhisk's init timeout).
	initAllowance = 60 * time.Second
	// keepFinished is how many activations a container is known to have
	// finished the queue still remembers, so that one whose record was
	// lost with its invoker (still queued in its record writer) gets an
	// error record too. A remembered activation costs one store read when
	// its container is lost or its safety-net deadline passes.
	keepFinished = 8
)

// ctrID names one container.
type ctrID struct{ invoker, container string }

// handedAct is one activation handed to a container that may still run.
type handedAct struct {
	e   *entry
	at  time.Time // handed out
	due time.Time // the safety net's deadline
	// claimed: a predecessor handed it out (handleClaim). The container's
	// later fetches do not prove that it finished (the container may run
	// several at once, and the predecessor's eviction count is lost), so
	// only its record, the safety net or the container's word that the
	// answer never came (unanswered.go) ends it.
	claimed bool
	// seq is the number of the container's fetch it answered (0: not
	// numbered); undelivered: a later fetch said that one got no answer
	// (unanswered.go).
	seq         uint64
	undelivered bool
	// stripped: e.msg came from the hand-out key, without the parameters
	// and key; the bus's copy (a predecessor's uncommitted offset) makes
	// it whole again.
	stripped bool
}

// ctrWork is what one container may still be running.
type ctrWork struct {
	acts     []*handedAct // oldest first
	goneAt   time.Time    // its key vanished (zero: not known to be gone)
	checking bool         // a check runs off the owner goroutine
}

// lostCheck is a check's outcome, back on the owner goroutine.
type lostCheck struct {
	id       ctrID
	acts     []*handedAct
	gone     bool // checked because the key vanished (else: overdue)
	alive    bool // the invoker is registered
	recorded map[whisk.ActivationID]bool
	err      error
}

// ContainerGone tells the queue that a container's key vanished (its
// invoker's lease ended, or the container was removed). It never blocks
// for long: after Run returned it drops the news.
func (q *Queue) ContainerGone(invokerID, containerID string) {
	select {
	case q.gonec <- ctrID{invokerID, containerID}:
	case <-q.done:
	}
}

// tracking says whether the queue remembers handed-out activations: it
// needs Deps.Recorded to tell finished ones from lost ones.
func (q *Queue) tracking() bool { return q.d.Recorded != nil }

// handedTo remembers that e was handed to the container f asked for.
func (q *Queue) handedTo(f *fetch, e *entry, msg *whisk.ActivationMessage) {
	if !q.tracking() || f.req.ContainerID == "" {
		return
	}
	now := q.d.Now()
	w := q.workOf(ctrID{f.req.InvokerID, f.req.ContainerID})
	due := now.Add(q.lostLimit(msg, f.req.Warm))
	w.acts = append(w.acts, &handedAct{e: e, at: now, due: due, seq: f.req.Seq})
	q.lostDue(due)
	if n := len(w.acts) - max(1, msg.Action.Limits.Concurrency) - keepFinished; n > 0 && !w.checking {
		// The container fetched with a free slot: the oldest finished,
		// and keepFinished finished ones are remembered already.
		kept := w.acts[:0]
		for i, h := range w.acts {
			switch {
			case i >= n || h.claimed:
				kept = append(kept, h)
			default:
				q.forgetDone(h.e)
			}
		}
		clear(w.acts[len(kept):])
		w.acts = kept
	}
}

// workOf is container id's work, made on first use.
func (q *Queue) workOf(id ctrID) *ctrWork {
	w := q.work[id]
	if w == nil {
		w = &ctrWork{}
		q.work[id] = w
	}
	return w
}

// lostLimit is how long after its hand-out an activation with no record
// counts as lost (the safety net).
func (q *Queue) lostLimit(msg *whisk.ActivationMessage, warm bool) time.Duration {
	limit := time.Duration(msg.Action.Limits.Timeout) * time.Millisecond
	if limit <= 0 {
		limit = time.Duration(whisk.DefaultSystemLimits().MaxTimeout) * time.Millisecond
	}
	if !warm {
		limit += initAllowance
	}
	return limit + q.cfg.LostAfter
}

// takenBack forgets e, which the container f asked for never received.
func (q *Queue) takenBack(f *fetch, e *entry) {
	id := ctrID{f.req.InvokerID, f.req.ContainerID}
	w := q.work[id]
	if w == nil {
		return
	}
	w.acts = slices.DeleteFunc(w.acts, func(h *handedAct) bool { return h.e == e })
	if len(w.acts) == 0 && !w.checking {
		delete(q.work, id)
	}
}

// fetchedBy notes that a container fetched: it is alive.
func (q *Queue) fetchedBy(invokerID, containerID string) {
	if w := q.work[ctrID{invokerID, containerID}]; w != nil {
		w.goneAt = time.Time{}
	}
}

func (q *Queue) handleGone(now time.Time, id ctrID) {
	w := q.work[id]
	if w == nil || !w.goneAt.IsZero() {
		return
	}
	q.log.Debug("queue: a container with activations handed to it is gone", "invoker", id.invoker, "container", id.container, "activations", len(w.acts))
	w.goneAt = now
	q.lostDue(now.Add(q.cfg.GoneGrace))
}

// lostDue notes that a lost check may be due at t (the queue wakes then);
// lostWake stays a lower bound of the next due check, and checkLost
// computes it afresh.
func (q *Queue) lostDue(t time.Time) {
	if q.lostWake.IsZero() || t.Before(q.lostWake) {
		q.lostWake = t
	}
}

// checkLost starts the checks that are due: containers gone for the grace,
// and activations past the safety net's deadline. It sets lostWake to the
// next one (a container being checked sets it when its check comes back).
func (q *Queue) checkLost(now time.Time) {
	if q.lostWake.IsZero() || now.Before(q.lostWake) {
		return // nothing due yet
	}
	q.lostWake = time.Time{}
	for id, w := range q.work {
		if w.checking {
			continue
		}
		if !w.goneAt.IsZero() {
			due := w.goneAt.Add(q.cfg.GoneGrace)
			if !now.Before(due) {
				q.startCheck(id, w, slices.Clone(w.acts), true)
				continue
			}
			q.lostDue(due)
		}
		var over []*handedAct
		for _, h := range w.acts {
			if !now.Before(h.due) {
				over = append(over, h)
			} else {
				q.lostDue(h.due)
			}
		}
		if len(over) > 0 {
			q.startCheck(id, w, over, false)
		}
	}
}

// startCheck asks, off the owner goroutine, which of acts have a record
// and, for a gone container with unrecorded ones, whether its invoker
// lives; handleCheck takes the answer.
func (q *Queue) startCheck(id ctrID, w *ctrWork, acts []*handedAct, gone bool) {
	w.checking = true
	q.checks++
	ctx, alive, recorded, timeout := q.countCtx, q.d.InvokerAlive, q.d.Recorded, q.cfg.CountTimeout
	msgs := make([]whisk.ActivationMessage, len(acts))
	for i, h := range acts {
		msgs[i] = h.e.msg
	}
	go func() {
		r := lostCheck{id: id, acts: acts, gone: gone}
		cctx, cancel := context.WithTimeout(ctx, timeout+time.Duration(len(msgs))*10*time.Millisecond)
		defer cancel()
		if len(msgs) > 0 {
			r.recorded, r.err = recorded(cctx, msgs)
		}
		open := 0
		for _, m := range msgs {
			if !r.recorded[m.ActivationID] {
				open++
			}
		}
		if r.err == nil && gone && alive != nil && open > 0 {
			r.alive, r.err = alive(cctx, id.invoker)
		}
		q.lostc <- &r // the owner takes it, in Run or while shutting down
	}()
}

// handleCheck forgets the activations of a check that have a record and
// fails the others, unless their container is not lost after all.
func (q *Queue) handleCheck(now time.Time, r *lostCheck) {
	q.checks--
	w := q.work[r.id]
	if w == nil {
		return
	}
	w.checking = false
	q.lostDue(now) // what is left of w is due again at its times: checkLost finds them
	defer func() {
		if len(w.acts) == 0 && !w.checking {
			delete(q.work, r.id)
		}
	}()
	if r.err != nil {
		q.log.Warn("queue: checking activations of a lost container; retrying", "invoker", r.id.invoker, "container", r.id.container, "err", r.err)
		if r.gone {
			w.goneAt = now.Add(-q.cfg.GoneGrace + q.cfg.Tick*10) // again in ten ticks
		} else {
			for _, h := range r.acts {
				h.due = now.Add(q.cfg.Tick * 10)
			}
		}
		return
	}
	var open []*handedAct // still tracked, no record
	for _, h := range r.acts {
		i := slices.Index(w.acts, h)
		if i < 0 {
			continue // evicted meanwhile: it finished
		}
		if r.recorded[h.e.msg.ActivationID] {
			w.acts = slices.Delete(w.acts, i, i+1)
			q.forgetDone(h.e)
			continue
		}
		open = append(open, h)
	}
	switch {
	case len(open) == 0:
		return
	case r.gone && w.goneAt.IsZero():
		return // the container fetched meanwhile: it lives
	case r.gone && r.alive:
		// Its invoker lives (it removed the container, is shutting down
		// and flushing records, or got a new lease): the invoker records
		// what ran. Look again after another grace, until the records are
		// there or the invoker is gone too.
		w.goneAt = now
		return
	}
	fs := make([]failure, 0, len(open))
	for _, h := range open {
		w.acts = slices.DeleteFunc(w.acts, func(x *handedAct) bool { return x == h })
		text := whisk.MsgContainerLost(r.id.invoker, r.id.container)
		if !r.gone {
			text = whisk.MsgNoRecord(r.id.invoker, r.id.container, now.Sub(h.at).Milliseconds())
		}
		rec := q.record(h.e, h.at, whisk.StatusWhiskError, text) // started when handed out
		rec.End = now.UnixMilli()
		rec.Duration = rec.End - rec.Start
		fs = append(fs, failure{h.e, rec})
	}
	q.lostCount.Add(int64(len(fs)))
	q.log.Warn("queue: activations lost with their container get error records",
		"invoker", r.id.invoker, "container", r.id.container, "count", len(fs), "gone", r.gone)
	q.startFail(fs)
}

// Lost is the number of activations the queue failed because their
// container was lost or no record came in time (safe from any goroutine).
func (q *Queue) Lost() int64 { return q.lostCount.Load() }
