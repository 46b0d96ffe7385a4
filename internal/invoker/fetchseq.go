package invoker

import (
	"context"
	"sync"
	"sync/atomic"

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
// that ended without an answer (whisk.FetchRequest.Seq, Unanswered). It
// also fences stale leaders: it remembers the newest leadership epoch an
// activation came under (whisk.FetchResponse.Epoch) and refuses one
// handed out under an older epoch — it is not run, its fetch counts as
// unanswered (so the current leader hands it out again), and the caller
// gets FetchUnavailable (it re-reads the leader). Etcd already refuses a
// stale leader's hand-out record; this is the container's own check. Its
// slots fetch concurrently, so it has its own lock.
type fetchSeqs struct {
	mu     sync.Mutex
	last   uint64
	failed []whisk.SeqRange
	epoch  int64 // the newest epoch seen
	// stale counts the activations refused as a stale leader's; read by
	// the proxy after every fetch, so without the lock.
	stale atomic.Int64
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

// fetch numbers req, sends it through client, notes a call that failed
// and refuses a stale leader's activation.
func (s *fetchSeqs) fetch(ctx context.Context, client Fetcher, req *rpc.FetchRequest) (*rpc.FetchResponse, error) {
	req.Seq, req.Unanswered = s.next()
	resp, err := client.Fetch(ctx, req)
	if err != nil {
		s.unanswered(req.Seq)
		return resp, err
	}
	if resp.Status == rpc.FetchOK && resp.Activation != nil && resp.Epoch > 0 && !s.current(resp.Epoch) {
		s.unanswered(req.Seq)
		return &rpc.FetchResponse{Status: rpc.FetchUnavailable}, nil
	}
	return resp, nil
}

// current notes epoch and reports whether it is not older than the newest
// seen (else counts a stale activation).
func (s *fetchSeqs) current(epoch int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch < s.epoch {
		s.stale.Add(1)
		return false
	}
	s.epoch = epoch
	return true
}

// staleRefused is how many activations were refused as a stale leader's.
func (s *fetchSeqs) staleRefused() int { return int(s.stale.Load()) }
