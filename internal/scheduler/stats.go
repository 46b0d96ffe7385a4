package scheduler

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/eddy-faas/eddy/internal/queue"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// QueueStats are one queue's figures, as its owner last published them.
type QueueStats struct {
	Action    whisk.FQN
	State     string        // queue.State: running, idle, flushing, removing, removed
	Buffered  int           // activations waiting in the queue
	OldestAge time.Duration // how long the oldest of them has waited (0: none)
	Parked    int           // container fetches (long polls) waiting for work
}

// Stats are the scheduler's figures for its metrics (internal/metrics):
// gauges of the queues it hosts and follows, and counters since it
// started. Reading them takes the scheduler's lock once and touches no
// queue's owner.
type Stats struct {
	Queues    []QueueStats // the leader queues hosted here, by action
	Following []whisk.FQN  // the actions this scheduler follows (is a follower of)
	Decisions int64        // scheduling decisions (Decide runs) of every queue hosted here
	Requested int64        // containers the queues asked for
	Created   int64        // of them, created (acknowledged by an invoker)
	Failed    int64        // of them, failed or refused
	Failovers int64        // leader queues this scheduler took over as a follower
}

// schedStats are the counters behind Stats.
type schedStats struct {
	requested, created, failed, failovers atomic.Int64
	retiredDecisions                      atomic.Int64 // Decisions of queues that ended
}

// Stats returns the scheduler's figures now.
func (s *Scheduler) Stats() Stats {
	now := s.d.Now()
	st := Stats{
		Requested: s.stats.requested.Load(),
		Created:   s.stats.created.Load(),
		Failed:    s.stats.failed.Load(),
		Failovers: s.stats.failovers.Load(),
	}
	s.mu.RLock()
	// Read under the lock that retiring a queue holds, so a queue's
	// decisions are counted either here or in its queue, never neither.
	st.Decisions = s.stats.retiredDecisions.Load()
	for f, e := range s.queues {
		q := e.hosted()
		if q == nil {
			continue // under election, or lost it
		}
		qs := q.Stats()
		st.Decisions += qs.Decisions
		x := QueueStats{Action: f, State: q.State().String(), Buffered: qs.Buffered, Parked: qs.Parked}
		if !qs.Oldest.IsZero() {
			x.OldestAge = max(now.Sub(qs.Oldest), 0)
		}
		st.Queues = append(st.Queues, x)
	}
	for f := range s.follows {
		st.Following = append(st.Following, f)
	}
	s.mu.RUnlock()
	sort.Slice(st.Queues, func(i, j int) bool { return st.Queues[i].Action.String() < st.Queues[j].Action.String() })
	sort.Slice(st.Following, func(i, j int) bool { return st.Following[i].String() < st.Following[j].String() })
	return st
}

// retired adds the decisions of a queue that ended to the total.
func (st *schedStats) retired(q *queue.Queue) { st.retiredDecisions.Add(q.Stats().Decisions) }

// countedCreate is the creator's start, counting the containers asked for
// and how their creations ended.
func (s *Scheduler) countedCreate(req queue.CreateRequest) {
	s.stats.requested.Add(1)
	done := req.Done
	req.Done = func(r queue.CreationResult) {
		if r.OK {
			s.stats.created.Add(1)
		} else {
			s.stats.failed.Add(1)
		}
		done(r)
	}
	s.creator.start(req)
}
