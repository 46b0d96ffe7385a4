package queue

// This file is the reader goroutine, which owns the bus consumer, and the
// commit watermark the owner publishes for it (offsets).

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// read owns the consumer: it polls, forwards records to the owner, and
// commits the watermark the owner publishes. With a consumer that can call
// back (bus.Consumer.Notify: the in-memory bus) the reader keeps no
// goroutine while nothing is there to read or commit: see reader.park.
func (q *Queue) read(ctx context.Context, done chan<- struct{}) {
	if q.d.Handover != nil && !q.claim(ctx) {
		close(done)
		return
	}
	r := q.subscribe(ctx)
	if r == nil {
		close(done)
		return
	}
	r.done = done
	r.run(ctx)
}

// run consumes until the reader stops or parks; once stopped it commits the
// last watermark, closes the consumer and closes done.
func (r *reader) run(ctx context.Context) {
	if r.consume(ctx) {
		return // parked: a new goroutine runs on when woken
	}
	r.close(ctx)
	close(r.done)
}

// subscribe opens the consumer; nil when ctx ended or the topic is gone.
// A Subscribe of a group whose previous consumer (a dead leader's) is
// still in it waits, bounded by ctx, until the bus gives this one the
// topic; a bus that refuses at once (kind Conflict) is asked again.
func (q *Queue) subscribe(ctx context.Context) *reader {
	var c bus.Consumer
	began := q.d.Now()
	backoff := retry.New(100*time.Millisecond, 2*time.Second)
	for {
		var err error
		if c, err = q.d.Subscribe(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if whisk.IsKind(err, whisk.NotFound) {
			q.end(EndTopicGone, err)
			return nil
		}
		d := backoff.Next()
		q.log.Warn("queue: subscribe failed; retrying", "err", err, "in", d)
		if !retry.Sleep(ctx, d) {
			return nil
		}
	}
	subscribed := q.d.Now()
	if w := subscribed.Sub(began); w > time.Second {
		q.log.Info("queue: consuming the action's topic after waiting for the previous consumer", "waited", w)
	}
	return &reader{q: q, c: c, checkBefore: subscribed.Add(q.cfg.DedupSkew).UnixMilli(), committed: -1}
}

// reader is the state of the reader goroutine once subscribed.
type reader struct {
	q *Queue
	c bus.Consumer
	// Records published before this consumer got the topic may have been
	// handed out by a predecessor without a commit: those are checked.
	checkBefore int64 // epoch ms
	committed   int64 // the last offset committed
	lost        bool  // the bus gave the topic to another consumer
	done        chan<- struct{}
	// A parked reader (park) has no goroutine; pmu orders park's set-up
	// before the goroutine that a wake starts (unpark).
	pmu       sync.Mutex
	parked    bool
	stopAfter func() bool // stops the ctx callback of the park
}

// consume polls, forwards records to the owner and commits the watermark;
// true when it parked instead (the goroutine must then return at once).
// Its frame is what an idle queue's reader keeps on its stack (with a
// consumer that cannot park): the work on records and errors is in methods
// of their own.
func (r *reader) consume(ctx context.Context) (parked bool) {
	r.unpark()
	q := r.q
	for ctx.Err() == nil {
		r.commit(ctx)
		if r.lost {
			return false
		}
		if r.park(ctx) {
			return true
		}
		// The Poll waits for records with no deadline; once the owner
		// moves the watermark (or it is ahead of the commit already: a
		// commit failed or raced), the Poll ends within pollWait so that
		// the reader commits it.
		pctx, cancel := context.WithCancel(ctx)
		q.poll.begin(cancel)
		if q.commitTo.Load() > r.committed {
			q.poll.moved()
		}
		recs, err := r.c.Poll(pctx, pollBatch)
		q.poll.end()
		cancel()
		if err != nil {
			if !r.pollFailed(ctx, pctx, err) {
				return false
			}
			continue
		}
		if !r.forward(ctx, recs) {
			return false
		}
	}
	return false
}

// park leaves the reader with no goroutine until a Poll would not block,
// ctx ends, or pollWait after the owner moved the watermark: the first of
// them starts a goroutine that runs on (run). False, with nothing
// registered, when Poll should be called now (records are there, or the
// consumer cannot call back).
func (r *reader) park(ctx context.Context) bool {
	var woken atomic.Bool
	wake := func() {
		if woken.CompareAndSwap(false, true) {
			go r.run(ctx)
		}
	}
	r.pmu.Lock()
	defer r.pmu.Unlock()
	r.q.poll.begin(wake)
	if r.c.Notify(wake) {
		r.q.poll.end()
		return false
	}
	r.parked = true
	r.stopAfter = context.AfterFunc(ctx, wake)
	if r.q.commitTo.Load() > r.committed {
		r.q.poll.moved()
	}
	return true
}

// unpark undoes what park registered, in the goroutine a wake started.
func (r *reader) unpark() {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	if !r.parked {
		return
	}
	r.parked = false
	r.q.poll.end()
	r.stopAfter()
	r.stopAfter = nil
}

// commit commits the watermark the owner published, if it moved.
func (r *reader) commit(ctx context.Context) {
	t := r.q.commitTo.Load()
	if t <= r.committed || r.lost || r.q.fenced.Load() {
		return // fenced: a successor leads and commits
	}
	if r.q.d.Handover != nil && !r.q.confirm(ctx, r.q.claimedEpoch.Load()) {
		return // not confirmed: a commit must never come from a stale leader
	}
	if err := r.c.Commit(ctx, t); err != nil {
		if whisk.IsKind(err, whisk.Conflict) {
			r.lost = true
			r.q.end(EndLost, err)
			return
		}
		r.q.log.Warn("queue: commit failed", "offset", t, "err", err)
		return
	}
	r.committed = t
}

// close commits the owner's last watermark and closes the consumer.
func (r *reader) close(ctx context.Context) {
	<-r.q.final
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	r.commit(cctx)
	cancel()
	if err := r.c.Close(); err != nil {
		r.q.log.Warn("queue: closing the consumer", "err", err)
	}
}

// pollFailed takes a Poll's error; false when the reader must stop.
func (r *reader) pollFailed(ctx, pctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	// A deleted topic (NotFound) or a closed consumer (Invalid)
	// never comes back: polling it again is useless. A topic the
	// bus gave to another consumer (Conflict) has a new leader.
	switch {
	case whisk.IsKind(err, whisk.NotFound), whisk.IsKind(err, whisk.Invalid):
		r.q.end(EndTopicGone, err)
		return false
	case whisk.IsKind(err, whisk.Conflict):
		r.q.end(EndLost, err)
		return false
	}
	if pctx.Err() == nil {
		r.q.log.Warn("queue: poll failed", "err", err)
		return retry.Sleep(ctx, time.Second)
	}
	return true // the Poll was ended to commit
}

// forward decodes recs and hands them to the owner in one send; false
// when ctx ended first.
func (r *reader) forward(ctx context.Context, recs []bus.Record) bool {
	ins := make([]inbound, len(recs))
	for i, rec := range recs {
		ins[i].off = rec.Offset
		if err := whisk.DecodeActivationMessage(rec.Value, &ins[i].msg); err != nil {
			ins[i].err = err
		}
	}
	r.q.markRecorded(ctx, ins, r.checkBefore)
	select {
	case r.q.msgs <- ins:
		return true
	case <-ctx.Done():
		return false
	}
}

// pollWaker ends the reader's Poll pollWait after the owner moved the
// commit watermark, so that a queue with nothing to commit polls without a
// timer and one that handed something out commits it soon. The timer is
// armed at most once per Poll.
type pollWaker struct {
	mu     sync.Mutex
	cancel func() // ends the Poll in progress or wakes the parked reader; nil between polls
	gen    uint64 // counts Polls, so a late fire spares the next one
	armed  bool
	armGen uint64      // the Poll the timer was armed for
	timer  *time.Timer // calls fire; made on first use
}

// begin registers the cancel of a Poll about to start (reader).
func (p *pollWaker) begin(cancel func()) {
	p.mu.Lock()
	p.cancel = cancel
	p.gen++
	p.mu.Unlock()
}

// end forgets the Poll that returned (reader).
func (p *pollWaker) end() {
	p.mu.Lock()
	p.cancel = nil
	if p.armed {
		p.timer.Stop()
		p.armed = false
	}
	p.mu.Unlock()
}

// moved says the watermark moved: the Poll in progress ends within pollWait.
func (p *pollWaker) moved() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel == nil || p.armed {
		return
	}
	p.armed, p.armGen = true, p.gen
	if p.timer == nil {
		p.timer = time.AfterFunc(pollWait, p.fire)
		return
	}
	p.timer.Reset(pollWait)
}

func (p *pollWaker) fire() {
	p.mu.Lock()
	cancel := p.cancel
	if !p.armed || p.armGen != p.gen {
		cancel = nil // the Poll it was armed for has returned
	}
	p.armed = false
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// publishMark hands the watermark to the reader when it moved (owner).
func (q *Queue) publishMark() {
	if m := q.offs.mark; m != q.published {
		q.published = m
		q.commitTo.Store(m)
		q.poll.moved()
	}
}

// markRecorded asks Deps.Recorded about the records published before
// checkBefore (epoch ms), and those whose publisher may have published
// them before (Repeat), and marks those with a record as duplicates.
func (q *Queue) markRecorded(ctx context.Context, ins []inbound, checkBefore int64) {
	if q.d.Recorded == nil {
		return
	}
	var ask []whisk.ActivationMessage
	for _, in := range ins {
		if in.err == nil && (in.msg.Published < checkBefore || in.msg.Repeat) {
			ask = append(ask, in.msg)
		}
	}
	if len(ask) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, q.cfg.CountTimeout+time.Duration(len(ask))*10*time.Millisecond)
	done, err := q.d.Recorded(rctx, ask)
	cancel()
	if err != nil {
		q.log.Warn("queue: checking for records of activations a predecessor may have handed out", "n", len(ask), "err", err)
	}
	for i := range ins {
		if ins[i].err == nil && done[ins[i].msg.ActivationID] {
			ins[i].dup = true
		}
	}
}

// end asks the owner to end the queue (the reader found the topic gone, or
// taken by another consumer).
func (q *Queue) end(why End, err error) {
	select {
	case q.endc <- ending{why, err}:
	default:
	}
}

type inbound struct {
	off int64
	msg whisk.ActivationMessage
	err error
	dup bool // the activation already has a record (Deps.Recorded)
}

// offsets tracks the consumed offsets not yet committed past. mark is the
// highest offset up to which every consumed record is done; -1 for none.
type offsets struct {
	order []int64 // consumed, ascending, above mark
	done  map[int64]bool
	mark  int64
}

func (o *offsets) add(off int64) { o.order = append(o.order, off) }

func (o *offsets) finish(off int64) {
	if off <= o.mark {
		return
	}
	o.done[off] = true
	for len(o.order) > 0 && o.done[o.order[0]] {
		o.mark = o.order[0]
		delete(o.done, o.order[0])
		o.order = o.order[1:]
	}
}

// reopen makes a finished offset outstanding again; false when the mark
// has passed it already.
func (o *offsets) reopen(off int64) bool {
	if off <= o.mark {
		return false
	}
	delete(o.done, off)
	return true
}

// Outstanding is the number of consumed records not yet done (for tests and status).
func (o *offsets) outstanding() int { return len(o.order) - len(o.done) }
