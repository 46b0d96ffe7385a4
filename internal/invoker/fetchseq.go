package invoker

import (
	"context"
	"sync"

	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// maxUnanswered bounds the ranges of failed fetch numbers a container
// reports. A queue that finds a hand-out's number among them hands the
// activation out again; one that no longer finds it there falls back on
// the safety net (an error record, queue/lost.go). A streak of failures
// is one range, so 16 cover many fail-overs.
const maxUnanswered = 16

// fetchSeqs numbers a container's fetches and remembers the recent ones
// that ended without an answer (whisk.FetchRequest.Seq, Unanswered). Its
// slots fetch concurrently, so it has its own lock.
type fetchSeqs struct {
	mu     sync.Mutex
	last   uint64
	failed []whisk.SeqRange
}

// next numbers a fetch and returns the failed ranges to report with it.
func (s *fetchSeqs) next() (uint64, []whisk.SeqRange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last++
	return s.last, append([]whisk.SeqRange(nil), s.failed...)
}

// unanswered notes that fetch seq got no answer: whatever a queue handed
// to it never reached the container.
func (s *fetchSeqs) unanswered(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.failed); n > 0 && s.failed[n-1].To+1 == seq {
		s.failed[n-1].To = seq
		return
	}
	s.failed = append(s.failed, whisk.SeqRange{From: seq, To: seq})
	if len(s.failed) > maxUnanswered {
		s.failed = append(s.failed[:0], s.failed[len(s.failed)-maxUnanswered:]...)
	}
}

// fetch numbers req, sends it through client and notes a call that failed.
func (s *fetchSeqs) fetch(ctx context.Context, client Fetcher, req *rpc.FetchRequest) (*rpc.FetchResponse, error) {
	req.Seq, req.Unanswered = s.next()
	resp, err := client.Fetch(ctx, req)
	if err != nil {
		s.unanswered(req.Seq)
	}
	return resp, err
}
