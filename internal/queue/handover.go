package queue

// This file is the in-flight hand-over between leaders and the fencing of
// a stale one (docs/internals.md, "In-flight hand-over and fencing").
//
// With Deps.Handover set, the queue records every hand-out (activation,
// container, epoch) before it answers the fetch, and the record succeeds
// only while the queue's leadership (its epoch) is the current one. So:
//
//   - a successor learns, when it starts (Claim), every activation its
//     predecessor handed out and did not see finished: it skips them when
//     the bus delivers them again (never run twice) and tracks them per
//     container like its own hand-outs (lost.go), so that one whose
//     container is lost too gets an error record (never silence);
//   - a leader whose leadership ended — its lease expired while it was
//     paused or cut off, or a successor was elected — hands out nothing
//     more: the record is refused (kind Conflict), the queue ends as
//     EndLost, commits nothing more and writes no record of its own
//     (Confirm before each fail batch).
//
// Hand-outs are recorded off the owner goroutine; the fetch is answered
// when the record comes back (handleHanded). Keys of activations known to
// be finished (evicted from a container's tracking, recorded, or failed by
// the queue) are deleted in later records' transactions or by Forget.

import (
	"context"
	"slices"
	"time"

	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Handover records hand-outs for a successor leader and fences this one
// (the scheduler implements it on etcd, per action). Every method is
// called off the owner goroutine.
type Handover interface {
	// Claim confirms that this queue's scheduler holds the action's
	// leadership and returns its epoch and the hand-outs predecessors
	// recorded and did not forget. An error of kind Conflict: not the
	// leader (yet); the queue asks again until it is, or it ends.
	Claim(ctx context.Context) (epoch int64, handed []whisk.Handout, err error)
	// Record stores h if epoch is still the action's leadership, deleting
	// the hand-outs of forget in the same write; kind Conflict when a newer
	// leadership exists (or none).
	Record(ctx context.Context, epoch int64, h whisk.Handout, forget []whisk.ActivationID) error
	// Forget deletes the hand-outs of ids.
	Forget(ctx context.Context, ids []whisk.ActivationID) error
	// Confirm fails with kind Conflict when epoch is no longer the
	// action's leadership.
	Confirm(ctx context.Context, epoch int64) error
}

const (
	// handoutTimeout bounds one hand-out record; a fetch whose record
	// failed otherwise is answered empty and asks again.
	handoutTimeout = 2 * time.Second
	// handoutRetryPause delays the answer to a fetch whose record failed
	// (etcd unreachable), so that containers do not spin.
	handoutRetryPause = 200 * time.Millisecond
	// forgetPerRecord is how many deletions ride along with one record.
	forgetPerRecord = 32
)

// handoverState is the queue's leadership and hand-outs being recorded.
type handoverState struct {
	handing    int // hand-out records in flight
	forget     []whisk.ActivationID
	forgetting bool // a Forget runs
}

type handResult struct {
	f      *fetch
	e      *entry
	msg    whisk.ActivationMessage
	forget []whisk.ActivationID
	err    error
}

type forgetResult struct {
	ids []whisk.ActivationID
	err error
}

// claim asks Handover.Claim until it answers (reader goroutine, before it
// subscribes) and hands the answer to the owner; false when ctx ended.
func (q *Queue) claim(ctx context.Context) bool {
	backoff := retry.New(100*time.Millisecond, 2*time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, handoutTimeout)
		epoch, hs, err := q.d.Handover.Claim(cctx)
		cancel()
		if err == nil {
			q.claimedEpoch.Store(epoch)
			select {
			case q.claimc <- hs:
				return true
			case <-ctx.Done():
				return false
			}
		}
		if ctx.Err() != nil {
			return false
		}
		d := backoff.Next()
		q.log.Info("queue: claiming the leadership's hand-outs; retrying", "err", err, "in", d)
		if !retry.Sleep(ctx, d) {
			return false
		}
	}
}

// handleClaim takes the leadership's epoch and the predecessors' hand-outs:
// each is skipped when delivered again and tracked on its container, which
// is checked after the grace (lost.go: recorded → forgotten; container or
// invoker gone → error record).
func (q *Queue) handleClaim(now time.Time, handed []whisk.Handout) {
	if len(handed) > 0 {
		q.log.Info("queue: taking over activations a predecessor handed out", "count", len(handed), "epoch", q.claimedEpoch.Load())
	}
	for _, h := range handed {
		id := h.Message.ActivationID
		if q.recent.has(id) {
			continue
		}
		q.recent.add(id)
		q.claimed.Add(1)
		e := &entry{msg: h.Message, off: -1, enq: enqueued(h.Message, now), keyed: true}
		w := q.workOf(ctrID{h.InvokerID, h.ContainerID})
		at := time.UnixMilli(h.HandedAt)
		w.acts = append(w.acts, &handedAct{e: e, at: at, due: at.Add(q.lostLimit(&h.Message, h.Warm)), claimed: true, seq: h.Seq, stripped: true})
		// Checked after the grace whether it finished; a fetch of the
		// container says it lives (fetchedBy).
		w.goneAt = now
		q.lostDue(now.Add(q.cfg.GoneGrace))
	}
}

// recordHandout records e's hand-out to f off the owner goroutine;
// handleHanded answers f.
func (q *Queue) recordHandout(f *fetch, e *entry, msg whisk.ActivationMessage) {
	f.pending = true
	q.handing++
	n := min(len(q.forget), forgetPerRecord)
	forget := slices.DeleteFunc(slices.Clone(q.forget[:n]), func(id whisk.ActivationID) bool { return id == msg.ActivationID })
	q.forget = q.forget[n:]
	epoch := q.claimedEpoch.Load()
	stored := msg
	stored.Params, stored.APIKey, stored.InitParams = nil, "", nil
	h := whisk.Handout{
		InvokerID: f.req.InvokerID, ContainerID: f.req.ContainerID, Warm: f.req.Warm,
		HandedAt: q.d.Now().UnixMilli(), Epoch: epoch, Seq: f.req.Seq, Message: stored,
	}
	ctx, ho := q.countCtx, q.d.Handover
	go func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handoutTimeout)
		err := ho.Record(rctx, epoch, h, forget)
		cancel()
		if err != nil && !whisk.IsKind(err, whisk.Conflict) {
			time.Sleep(handoutRetryPause)
		}
		q.handedc <- &handResult{f: f, e: e, msg: msg, forget: forget, err: err}
	}()
}

// handleHanded answers a fetch whose hand-out record came back.
func (q *Queue) handleHanded(r *handResult) {
	q.handing--
	f, e := r.f, r.e
	f.pending = false
	switch {
	case r.err == nil && !f.cancelled:
		e.keyed = true
		q.answer(f, e, &r.msg)
	case r.err == nil:
		// The fetch went away meanwhile: the key names a container that
		// never got the activation; the next hand-out overwrites it, or,
		// when the queue ends first, requeue deletes it.
		e.keyed = true
		q.requeue(e)
	case whisk.IsKind(r.err, whisk.Conflict):
		q.forget = append(q.forget, r.forget...)
		q.fenced.Store(true)
		f.reply <- &whisk.FetchResponse{Status: whisk.FetchUnavailable}
		if q.st != Removing && q.st != Removed {
			q.handleEnd(ending{EndLost, r.err})
		}
	default:
		q.forget = append(q.forget, r.forget...)
		// The write may have been applied although it failed here (a
		// timeout after the commit): keyed, so that the key is deleted
		// if the queue ends before a later hand-out overwrites it.
		e.keyed = true
		q.log.Warn("queue: recording a hand-out failed; the container asks again", "activation", e.msg.ActivationID, "err", r.err)
		if !f.cancelled {
			f.reply <- &whisk.FetchResponse{Status: whisk.FetchEmpty}
		}
		q.requeue(e)
	}
}

// requeue puts e back at the head of the buffer and serves parked fetches
// (not while the queue is ending: its consumer's successor gets it).
func (q *Queue) requeue(e *entry) {
	if q.st == Removing || q.st == Removed {
		q.dropUnhanded([]*entry{e})
		return
	}
	q.buf = append([]*entry{e}, q.buf...)
	for len(q.buf) > 0 && len(q.parked) > 0 {
		g := q.nextParked()
		h := q.buf[0]
		q.buf = q.buf[1:]
		q.hand(g, h)
	}
}

// tracksHanded reports whether the queue still tracks activations a
// predecessor handed out whose end it does not know. (Its own hand-outs
// end with their containers: a queue with no container left may retire.)
func (q *Queue) tracksHanded() bool {
	for _, w := range q.work {
		for _, h := range w.acts {
			if h.claimed {
				return true
			}
		}
	}
	return false
}

// dropUnhanded lets go of entries the queue will not hand out, as it ends:
// their successor reads them from the bus again, and must not take a
// hand-out key of ours for a container that never got them (it would skip
// them as handed, and fail them as lost later), so their keys are
// deleted.
func (q *Queue) dropUnhanded(es []*entry) {
	for _, e := range es {
		if e.keyed {
			e.keyed = false
			q.forget = append(q.forget, e.msg.ActivationID)
		}
	}
}

// forgetDone notes that e's activation is finished and recorded: its
// hand-out key is deleted with a later record or by flushForget.
func (q *Queue) forgetDone(e *entry) {
	if q.d.Handover != nil && e.keyed {
		e.keyed = false
		q.forget = append(q.forget, e.msg.ActivationID)
	}
}

// flushForget deletes the keys waiting to be forgotten when no hand-out
// takes them along (tick).
func (q *Queue) flushForget() {
	if q.d.Handover == nil || q.forgetting || len(q.forget) == 0 || q.handing > 0 {
		return
	}
	q.forgetting = true
	ids := q.forget
	q.forget = nil
	ctx, ho := q.countCtx, q.d.Handover
	go func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handoutTimeout)
		err := ho.Forget(fctx, ids)
		cancel()
		q.forgotc <- &forgetResult{ids, err}
	}()
}

func (q *Queue) handleForgot(r *forgetResult) {
	q.forgetting = false
	if r.err != nil {
		q.log.Debug("queue: deleting hand-out keys failed; later", "count", len(r.ids), "err", r.err)
		q.forget = append(q.forget, r.ids...)
	}
}

// forgetAtEnd deletes, as the queue ends, the keys it knows finished and,
// when the queue is retired (idle, topic gone: nothing runs), every key it
// still tracks.
func (q *Queue) forgetAtEnd(ctx context.Context) {
	if q.d.Handover == nil {
		return
	}
	for q.forgetting {
		q.handleForgot(<-q.forgotc)
	}
	ids := q.forget
	if q.why == EndIdle || q.why == EndTopicGone {
		for _, w := range q.work {
			for _, h := range w.acts {
				if h.e.keyed {
					ids = append(ids, h.e.msg.ActivationID)
				}
			}
		}
	}
	if len(ids) == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handoutTimeout)
	defer cancel()
	if err := q.d.Handover.Forget(fctx, ids); err != nil {
		q.log.Debug("queue: deleting hand-out keys as the queue ends", "count", len(ids), "err", err)
	}
}

// confirm checks, before the queue writes records of its own, that its
// leadership is current. Not ok: write nothing now (fenced: never; etcd
// unreachable: the batch is tried again next tick, so a leader cut off
// from etcd does not fail what its successor runs).
func (q *Queue) confirm(ctx context.Context, epoch int64) (ok bool) {
	if q.d.Handover == nil {
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, handoutTimeout)
	err := q.d.Handover.Confirm(cctx, epoch)
	cancel()
	if whisk.IsKind(err, whisk.Conflict) {
		q.fenced.Store(true)
		q.end(EndLost, err)
	}
	return err == nil
}

// Claimed is the number of activations a predecessor had handed out that
// this queue took over (safe from any goroutine).
func (q *Queue) Claimed() int64 { return q.claimed.Load() }

// Fenced says the queue found its leadership ended (safe from any
// goroutine).
func (q *Queue) Fenced() bool { return q.fenced.Load() }
