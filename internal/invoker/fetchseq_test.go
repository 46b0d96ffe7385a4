package invoker

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// failing answers the fetches whose number is in fail with an error.
type failing struct {
	fail map[uint64]bool
	seen []rpc.FetchRequest
}

func (f *failing) Fetch(_ context.Context, req *rpc.FetchRequest) (*rpc.FetchResponse, error) {
	f.seen = append(f.seen, *req)
	if f.fail[req.Seq] {
		return nil, errors.New("connection refused")
	}
	return &rpc.FetchResponse{Status: rpc.FetchEmpty}, nil
}

// Fetches are numbered from 1; a streak of failures is reported as one
// range with every later fetch; old ranges give way to new ones.
func TestFetchSeqsReportUnanswered(t *testing.T) {
	f := &failing{fail: map[uint64]bool{2: true, 3: true, 4: true, 6: true}}
	var s fetchSeqs
	for range 7 {
		_, _ = s.fetch(context.Background(), f, &rpc.FetchRequest{})
	}
	for i, req := range f.seen {
		if req.Seq != uint64(i+1) {
			t.Fatalf("fetch %d numbered %d", i+1, req.Seq)
		}
	}
	want := []whisk.SeqRange{{From: 2, To: 4}, {From: 6, To: 6}}
	if got := f.seen[6].Unanswered; !slices.Equal(got, want) {
		t.Fatalf("fetch 7 reported %v, want %v", got, want)
	}
	if !f.seen[6].UnansweredSeq(3) || f.seen[6].UnansweredSeq(5) || f.seen[6].UnansweredSeq(7) {
		t.Fatalf("UnansweredSeq of fetch 7 wrong for 3, 5 or 7: %v", f.seen[6].Unanswered)
	}
	// Every other fetch failing: one range each, the last maxUnanswered kept.
	for i := uint64(8); i < 8+4*maxUnanswered; i++ {
		if i%2 == 0 {
			f.fail[i] = true
		}
	}
	for range 4 * maxUnanswered {
		_, _ = s.fetch(context.Background(), f, &rpc.FetchRequest{})
	}
	_, _ = s.fetch(context.Background(), f, &rpc.FetchRequest{})
	last := f.seen[len(f.seen)-1]
	if len(last.Unanswered) != maxUnanswered {
		t.Fatalf("%d ranges reported, want the last %d", len(last.Unanswered), maxUnanswered)
	}
	if newest := last.Unanswered[maxUnanswered-1]; newest.From != last.Seq-2 || newest.To != last.Seq-2 {
		t.Fatalf("newest range %v, want fetch %d alone", newest, last.Seq-2)
	}
}

// epochs answers each fetch with an activation handed out under the next
// of its epochs.
type epochs struct {
	next []int64
	seen []rpc.FetchRequest
}

func (f *epochs) Fetch(_ context.Context, req *rpc.FetchRequest) (*rpc.FetchResponse, error) {
	f.seen = append(f.seen, *req)
	e := f.next[0]
	f.next = f.next[1:]
	return &rpc.FetchResponse{Status: rpc.FetchOK, Activation: &whisk.ActivationMessage{ActivationID: whisk.NewActivationID()}, Epoch: e}, nil
}

// An activation handed out under an older leadership than one already
// seen (a stale leader's) is refused: not returned to run, reported as
// unanswered with the next fetch; epoch 0 (no hand-over) is never
// refused.
func TestFetchSeqsRefuseStaleLeader(t *testing.T) {
	f := &epochs{next: []int64{7, 9, 8, 0, 9}}
	var s fetchSeqs
	var got []string
	for range 5 {
		resp, err := s.fetch(context.Background(), f, &rpc.FetchRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.Status)
	}
	want := []string{rpc.FetchOK, rpc.FetchOK, rpc.FetchUnavailable, rpc.FetchOK, rpc.FetchOK}
	if !slices.Equal(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	if n := s.staleRefused(); n != 1 {
		t.Fatalf("%d refused as stale, want 1", n)
	}
	if last := f.seen[4]; !last.UnansweredSeq(3) {
		t.Fatalf("fetch 5 reports unanswered %v, want the refused fetch 3 among them", last.Unanswered)
	}
}
