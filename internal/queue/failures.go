package queue

// This file is the queue's own error records: activations the queue fails
// (expired, throttled, a developer error while Flushing) are stored off
// the owner goroutine, and their offsets count as done once stored.

import (
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

type failure struct {
	e   *entry
	rec whisk.Activation
}

type failBatch struct {
	ok  []*entry
	bad []failure
}

func (q *Queue) failAll(now time.Time, status int, text string) {
	if len(q.buf) == 0 {
		return
	}
	fs := make([]failure, 0, len(q.buf))
	for _, e := range q.buf {
		fs = append(fs, failure{e, q.record(e, now, status, text)})
	}
	q.buf = nil
	q.startFail(fs)
}

// ConcurrentRetryAfter is the Retry-After of the concurrent-containers
// limit: containers free up as activations finish, so a short constant.
const ConcurrentRetryAfter = time.Second

// failThrottled fails the buffer at the namespace's concurrent-containers
// limit: OpenWhisk's message, and the throttle marker (whisk.AnnThrottled)
// from which the controller answers 429 with Retry-After and the limit.
func (q *Queue) failThrottled(now time.Time, count, allowed int) {
	if len(q.buf) == 0 {
		return
	}
	t := &whisk.Throttle{Limit: whisk.LimitConcurrentContainers, Count: count, Allowed: allowed, RetryAfter: ConcurrentRetryAfter}
	fs := make([]failure, 0, len(q.buf))
	for _, e := range q.buf {
		rec := q.record(e, now, whisk.StatusWhiskError, t.Message())
		rec.MarkThrottled(t)
		fs = append(fs, failure{e, rec})
	}
	q.buf = nil
	q.startFail(fs)
}

// record builds the activation record of an activation the queue fails.
func (q *Queue) record(e *entry, now time.Time, status int, text string) whisk.Activation {
	m := e.msg
	meta := m.Action
	if meta.Rev < q.meta.Rev && !q.provisional {
		meta = q.meta
	}
	a := whisk.RecordOf(&m, meta)
	a.Start, a.End = now.UnixMilli(), now.UnixMilli()
	a.StatusCode, a.Response = status, whisk.ErrorResponse(status, text)
	a.Logs = []string{}
	a.Annotate(meta, whisk.Timings{Queued: now.Sub(e.enq).Milliseconds()}, false)
	a.SetCause(m.Cause)
	return a
}

// startFail writes records in a goroutine; handleFailed marks their
// offsets done once stored and completed.
func (q *Queue) startFail(fs []failure) {
	q.failing++
	ctx, epoch := q.ctx, q.claimedEpoch.Load()
	go func() {
		var b failBatch
		if !q.confirm(ctx, epoch) {
			b.bad = fs // fenced: the queue ends and writes nothing; else tried again
			q.failed <- b
			return
		}
		for _, f := range fs {
			if err := q.d.Fail(ctx, f.e.msg, f.rec); err != nil {
				q.log.Error("queue: storing a failed activation", "activation", f.e.msg.ActivationID, "err", err)
				b.bad = append(b.bad, f)
				continue
			}
			b.ok = append(b.ok, f.e)
		}
		q.failed <- b
	}()
}

func (q *Queue) handleFailed(b failBatch) {
	q.failing--
	for _, e := range b.ok {
		if e.tracked {
			q.offs.finish(e.off)
		}
		q.forgetDone(e)
	}
	if q.fenced.Load() {
		return // a successor leads: its records count, not ours
	}
	q.refail = append(q.refail, b.bad...)
}
