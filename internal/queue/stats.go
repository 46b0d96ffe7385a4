package queue

import (
	"sync/atomic"
	"time"
)

// Stats are a queue's figures for the scheduler's metrics: what its owner
// last published (after every event it handled), readable from any
// goroutine.
type Stats struct {
	Buffered  int       // activations waiting in the buffer
	Oldest    time.Time // when the oldest buffered activation arrived (zero: none)
	Parked    int       // fetches (container long polls) waiting for an activation
	Decisions int64     // Decide runs since the queue started
}

// statsState is what publishStats writes and Stats reads.
type statsState struct {
	buffered, oldest, parked, decisions atomic.Int64
}

// Stats returns the figures the owner last published.
func (q *Queue) Stats() Stats {
	s := Stats{
		Buffered:  int(q.stats.buffered.Load()),
		Parked:    int(q.stats.parked.Load()),
		Decisions: q.stats.decisions.Load(),
	}
	if o := q.stats.oldest.Load(); o != 0 {
		s.Oldest = time.Unix(0, o)
	}
	return s
}

// publishStats publishes the buffer's figures; the owner calls it once per
// event (three atomic stores).
func (q *Queue) publishStats() {
	q.stats.buffered.Store(int64(len(q.buf)))
	q.stats.parked.Store(int64(len(q.parked)))
	var oldest int64
	if len(q.buf) > 0 {
		oldest = q.buf[0].enq.UnixNano()
	}
	q.stats.oldest.Store(oldest)
}
