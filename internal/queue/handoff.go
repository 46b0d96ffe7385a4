package queue

// This file is the hand-off: consumed activations into the buffer (with
// duplicates skipped), fetches served from it or parked until one comes,
// and activations taken back from fetches whose caller went away.

import (
	"slices"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// recents is a bounded set of activation ids: the oldest is forgotten when
// a new one comes and it is full.
type recents struct {
	ids  map[whisk.ActivationID]struct{}
	ring []whisk.ActivationID
	next int
	size int
}

func (r *recents) has(id whisk.ActivationID) bool {
	_, ok := r.ids[id]
	return ok
}

func (r *recents) add(id whisk.ActivationID) {
	if r.has(id) {
		return
	}
	if len(r.ring) < r.size {
		r.ring = append(r.ring, id)
	} else {
		delete(r.ids, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % r.size
	}
	r.ids[id] = struct{}{}
}

type entry struct {
	msg     whisk.ActivationMessage
	off     int64
	tracked bool // off counts in the commit watermark
	keyed   bool // its hand-out is recorded (handover.go): the key is deleted once it is done
	enq     time.Time
}

type fetch struct {
	req    whisk.FetchRequest
	reply  chan *whisk.FetchResponse
	at     time.Time
	handed *entry
	// pending: the hand-out is being recorded (handover.go); cancelled:
	// the caller went away meanwhile.
	pending, cancelled bool
}

// handleMessage takes one consumed record.
func (q *Queue) handleMessage(now time.Time, in *inbound) {
	q.offs.add(in.off)
	if in.err != nil {
		q.log.Error("queue: undecodable activation message skipped", "offset", in.off, "err", in.err)
		q.offs.finish(in.off)
		return
	}
	if id := in.msg.ActivationID; in.dup || id != "" && q.recent.has(id) {
		// Handed out before (by this queue, or by a predecessor whose
		// commit did not happen): never run twice. A predecessor's
		// hand-out gets its parameters back, in case it never reached
		// its container (unanswered.go).
		if !in.dup {
			q.wholeAgain(in.msg)
		}
		q.dups.Add(1)
		q.log.Info("queue: duplicate activation skipped", "activation", id, "offset", in.off, "recorded", in.dup)
		q.offs.finish(in.off)
		return
	}
	q.recent.add(in.msg.ActivationID)
	e := &entry{msg: in.msg, off: in.off, tracked: true, enq: enqueued(in.msg, now)}
	q.lastMsg = now
	q.arrived.add(e.enq, now)
	if in.msg.NamespaceLimit > 0 {
		q.nsLimit = in.msg.NamespaceLimit
	}
	if in.msg.Action.Rev > q.meta.Rev || q.provisional && in.msg.Action.Rev == q.meta.Rev {
		q.adopt(in.msg.Action)
	}
	if q.st == Flushing && q.flushDev {
		q.startFail([]failure{{e, q.record(e, now, whisk.StatusDeveloperError, q.flushMsg)}})
		return
	}
	wasIdle := q.st == Idle
	if wasIdle {
		q.setState(Running)
	}
	if f := q.nextParked(); f != nil {
		q.hand(f, e)
		return
	}
	q.buf = append(q.buf, e)
	// No container known and none coming → ask now, not at the next
	// tick: a cold start must not wait for the tick as well.
	if q.st == Running && (wasIdle || q.lastCount == 0) && q.inFlight() == 0 {
		q.decide(now)
	}
}

// enqueued is when an activation entered the system: when the controller
// published it (so retention and the queued time survive a fail-over and
// agree with the invoker's records), or now when that is unknown or ahead
// of our clock.
func enqueued(m whisk.ActivationMessage, now time.Time) time.Time {
	if m.Published <= 0 {
		return now
	}
	if p := time.UnixMilli(m.Published); p.Before(now) {
		return p
	}
	return now
}

// adopt makes meta the queue's revision: older containers get mismatch,
// and a failing creation of the old revision no longer holds it back
// (handleResult forgets results of older revisions' creations).
func (q *Queue) adopt(meta whisk.ActionMeta) {
	changed := meta.Rev != q.meta.Rev
	q.meta = meta
	q.provisional = false
	if !changed {
		return
	}
	q.log.Info("queue: new action revision", "to", meta.Rev)
	q.lastCount = 0
	q.counted = false // the counts were of the older revision
	q.parked = slices.DeleteFunc(q.parked, func(f *fetch) bool {
		if f.req.Rev < meta.Rev {
			f.reply <- &whisk.FetchResponse{Status: whisk.FetchMismatch}
			return true
		}
		return false
	})
	if q.st == Flushing {
		q.flushDev, q.flushMsg = false, ""
		q.setState(Running)
	}
}

func (q *Queue) handleFetch(now time.Time, f *fetch) {
	f.at = now
	r := &f.req
	if r.LastDurationMs > 0 {
		q.addDuration(r.LastDurationMs)
	}
	if q.st == Removing || q.st == Removed {
		f.reply <- &whisk.FetchResponse{Status: whisk.FetchUnavailable}
		return
	}
	// First: any fetch, a container's last (Alive false) or an obsolete
	// one's included, may report an answer it never got (its call failed
	// or was cancelled as the answer went).
	q.takeBackUnanswered(r)
	switch {
	case r.Rev < q.meta.Rev:
		f.reply <- &whisk.FetchResponse{Status: whisk.FetchMismatch}
		return
	case !r.Alive:
		q.lastCount = max(q.lastCount-1, 0)
		f.reply <- &whisk.FetchResponse{Status: whisk.FetchEmpty}
		return
	}
	q.lastFetch = now
	q.fetchedBy(r.InvokerID, r.ContainerID)
	if q.release > 0 && q.shareIsFresh(now, shareFresh) {
		q.releaseTo(now, f)
		return
	}
	if q.lastCount < 1 {
		q.lastCount = 1
		q.countGen++
	}
	if q.st == Idle || q.st == Flushing { // a live container is here
		q.flushDev, q.flushMsg = false, ""
		q.setState(Running)
	}
	if len(q.buf) > 0 {
		e := q.buf[0]
		q.buf[0] = nil
		q.buf = q.buf[1:]
		q.hand(f, e)
		return
	}
	q.parked = append(q.parked, f)
}

// nextParked removes and returns the parked fetch to serve next: warm
// containers first, then the longest waiting.
func (q *Queue) nextParked() *fetch {
	if len(q.parked) == 0 {
		return nil
	}
	i := slices.IndexFunc(q.parked, func(f *fetch) bool { return f.req.Warm })
	if i < 0 {
		i = 0
	}
	f := q.parked[i]
	q.parked = slices.Delete(q.parked, i, i+1)
	return f
}

// hand gives e to f; its offset is done.
func (q *Queue) hand(f *fetch, e *entry) {
	msg := e.msg
	if msg.Action.Rev < q.meta.Rev && !q.provisional {
		msg.Action = q.meta // older revisions run on the current code
	}
	f.handed = e
	if q.d.Handover != nil {
		q.recordHandout(f, e, msg) // answered once recorded (handleHanded)
		return
	}
	q.answer(f, e, &msg)
}

// answer gives f the activation e (as msg); its offset is done.
func (q *Queue) answer(f *fetch, e *entry, msg *whisk.ActivationMessage) {
	f.reply <- &whisk.FetchResponse{Status: whisk.FetchOK, Activation: msg, Epoch: q.claimedEpoch.Load()}
	q.handedTo(f, e, msg)
	if e.tracked {
		q.offs.finish(e.off)
	}
}

// handleCancel forgets a fetch whose caller went away and takes back an
// activation it had been given but not received.
func (q *Queue) handleCancel(f *fetch) {
	q.parked = slices.DeleteFunc(q.parked, func(p *fetch) bool { return p == f })
	if f.pending {
		f.cancelled = true // handleHanded takes the activation back
		return
	}
	select {
	case r := <-f.reply:
		if r.Status != whisk.FetchOK || f.handed == nil {
			return
		}
		e := f.handed
		q.takenBack(f, e)
		if e.tracked && !q.offs.reopen(e.off) {
			e.tracked = false // already committed past; kept in memory only
		}
		q.requeue(e)
	default:
	}
}
