package queue

// This file hands out again the activations whose hand-out never reached
// its container. A container numbers its fetches and tells, with each,
// the numbers of its recent ones that ended without an answer
// (whisk.FetchRequest.Seq, Unanswered): the call failed because the
// scheduler died after it recorded the hand-out, the connection broke, or
// the deadline passed as the answer was sent. The container never saw
// those activations, so they run elsewhere; without this they would wait
// for the safety net's error record (lost.go), minutes later, never run.
//
// A predecessor's hand-out (claimed) carries no parameters (its key keeps
// none): it is handed out again once the bus delivers its full message
// again, as it does when the predecessor died before committing it. One
// whose message never comes again (committed) is left to the safety net.

import (
	"slices"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// takeBackUnanswered re-queues the activations handed to fetches that r
// (a later fetch of the same container) says got no answer.
func (q *Queue) takeBackUnanswered(r *whisk.FetchRequest) {
	if len(r.Unanswered) == 0 || !q.tracking() {
		return
	}
	id := ctrID{r.InvokerID, r.ContainerID}
	w := q.work[id]
	if w == nil {
		return
	}
	// Every later fetch of the container repeats its ranges: the scan
	// allocates nothing unless a hand-out matches.
	var again []*handedAct
	for _, h := range w.acts {
		if h.undelivered || !r.UnansweredSeq(h.seq) {
			continue
		}
		h.undelivered = true
		if !h.stripped {
			again = append(again, h)
		}
	}
	for _, h := range again {
		q.handAgain(id, w, h)
	}
}

// wholeAgain gives a claimed, stripped hand-out the full message the bus
// delivered again (msg); an undelivered one is handed out again at once.
func (q *Queue) wholeAgain(msg whisk.ActivationMessage) {
	for id, w := range q.work {
		for _, h := range w.acts {
			if h.e.msg.ActivationID != msg.ActivationID || !h.stripped {
				continue
			}
			h.e.msg, h.stripped = msg, false
			if h.undelivered {
				q.handAgain(id, w, h)
			}
			return
		}
	}
}

// handAgain stops tracking h on its container and puts its activation back
// at the head of the buffer.
func (q *Queue) handAgain(id ctrID, w *ctrWork, h *handedAct) {
	if q.st == Removing || q.st == Removed {
		// Ending: its key stays, and the successor claims it (and asks
		// the container again).
		return
	}
	w.acts = slices.DeleteFunc(w.acts, func(x *handedAct) bool { return x == h })
	if len(w.acts) == 0 && !w.checking {
		delete(q.work, id)
	}
	e := h.e
	if e.tracked && !q.offs.reopen(e.off) {
		e.tracked = false // committed past already: kept in memory only
	}
	q.redelivered.Add(1)
	q.log.Info("queue: an activation's hand-out never reached its container; handing it out again",
		"activation", e.msg.ActivationID, "invoker", id.invoker, "container", id.container, "fetch", h.seq, "claimed", h.claimed)
	q.requeue(e)
}

// Redelivered is the number of activations handed out again because their
// first hand-out never reached its container (safe from any goroutine).
func (q *Queue) Redelivered() int64 { return q.redelivered.Load() }
