package queue

// This file is the periodic work (tick) and when the loop next wakes for
// it (nextWake, arm).

import (
	"slices"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// tick is the periodic work: expiry, retries of failed records, the
// scaling decision and the idle transitions.
func (q *Queue) tick(now time.Time) {
	q.parked = slices.DeleteFunc(q.parked, func(f *fetch) bool {
		if now.Sub(f.at) >= q.cfg.Park {
			f.reply <- &whisk.FetchResponse{Status: whisk.FetchEmpty}
			return true
		}
		return false
	})
	q.expire(now)
	q.checkLost(now)
	q.flushForget()
	if len(q.refail) > 0 && q.failing == 0 {
		fs := q.refail
		q.refail = nil
		q.startFail(fs)
	}
	if !q.shareIsFresh(now, shareFresh) {
		q.release = 0 // acting on an old read could give back too much
	}
	if len(q.buf) == 0 {
		q.wanting = false
	}
	if q.d.NamespaceShare != nil && len(q.buf) == 0 &&
		(q.wanting != q.wantPub || (q.st == Running && q.lastCount > 0 && now.Sub(q.shareAt) >= ShareEvery)) {
		q.startShareRead(now) // withdraw the demand; give idle containers back
	}
	switch q.st {
	case Running, Flushing:
		if len(q.buf) > 0 {
			q.decide(now)
			return
		}
		if len(q.inflight) > 0 || len(q.parked) > 0 {
			return
		}
		quiet := now.Sub(q.lastFetch) >= 2*q.cfg.Park && now.Sub(q.lastMsg) >= 2*q.cfg.Park
		if q.st == Flushing {
			quiet = now.Sub(q.lastMsg) >= q.cfg.FlushGrace
		}
		if quiet {
			q.flushDev, q.flushMsg = false, ""
			q.idleSince = now
			q.setState(Idle)
		}
	case Idle:
		if now.Sub(q.idleSince) >= q.cfg.IdleTimeout {
			q.startCount(now) // handleCount removes the queue when none is left
		}
	}
}

// arm sets the wake-up timer for the queue's next duty (nextWake), unless
// it is armed for that time or earlier already: an early wake-up costs one
// tick that finds little to do and arms the timer again.
func (q *Queue) arm(t *time.Timer, now time.Time) {
	w := q.nextWake(now)
	if w.IsZero() || !q.wakeAt.IsZero() && !q.wakeAt.After(w) {
		return
	}
	q.wakeAt = w
	t.Reset(w.Sub(now))
}

// nextWake is when tick next has something to do; zero for never. It is
// never less than one Config.Tick away, so a duty that stays due (a count
// in flight holds it up) cannot spin the owner; while activations wait,
// the queue ticks every Config.Tick as before.
func (q *Queue) nextWake(now time.Time) time.Time {
	soon := now.Add(q.cfg.Tick)
	if len(q.buf) > 0 || len(q.refail) > 0 && q.failing == 0 || q.wanting || q.wantPub ||
		len(q.forget) > 0 && !q.forgetting {
		return soon // decisions, expiry, record retries, the share demand, hand-out keys to delete
	}
	var w time.Time
	at := func(t time.Time) {
		if w.IsZero() || t.Before(w) {
			w = t
		}
	}
	if len(q.parked) > 0 {
		at(q.parked[0].at.Add(q.cfg.Park)) // parked in arrival order: the first expires first
	}
	if !q.lostWake.IsZero() {
		at(q.lostWake)
	}
	if !q.counting {
		if q.d.NamespaceShare != nil && q.st == Running && q.lastCount > 0 {
			at(q.shareAt.Add(ShareEvery)) // give idle containers back
		}
		if q.st == Idle {
			at(q.idleSince.Add(q.cfg.IdleTimeout))
		}
	}
	if len(q.inflight) == 0 && len(q.parked) == 0 {
		switch q.st {
		case Running:
			last := q.lastFetch
			if q.lastMsg.After(last) {
				last = q.lastMsg
			}
			at(last.Add(2 * q.cfg.Park))
		case Flushing:
			at(q.lastMsg.Add(q.cfg.FlushGrace))
		}
	}
	if !w.IsZero() && w.Before(soon) {
		w = soon
	}
	return w
}

// expire fails activations queued longer than the retention.
func (q *Queue) expire(now time.Time) {
	var fs []failure
	for len(q.buf) > 0 && now.Sub(q.buf[0].enq) >= q.cfg.Retention {
		e := q.buf[0]
		q.buf[0] = nil
		q.buf = q.buf[1:]
		fs = append(fs, failure{e, q.record(e, now, whisk.StatusWhiskError, whisk.MsgNotInitiated(now.Sub(e.enq).Milliseconds()))})
	}
	if len(fs) > 0 {
		q.log.Warn("queue: activations expired", "count", len(fs), "retention", q.cfg.Retention)
		q.startFail(fs)
	}
}
