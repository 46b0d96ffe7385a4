package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// lostHarness is a harness whose queue tracks handed-out activations: the
// store's records (recorded) and the registered containers (alive) are
// what the test sets.
type lostHarness struct {
	*harness
	mu       sync.Mutex
	recorded map[whisk.ActivationID]bool
	alive    map[string]bool // registered invokers
	checkErr error
}

func newLostHarness(t *testing.T) *lostHarness {
	h := &lostHarness{harness: newHarness(t), recorded: map[whisk.ActivationID]bool{}, alive: map[string]bool{}}
	h.q.d.Recorded = func(_ context.Context, msgs []whisk.ActivationMessage) (map[whisk.ActivationID]bool, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.checkErr != nil {
			return nil, h.checkErr
		}
		out := map[whisk.ActivationID]bool{}
		for _, m := range msgs {
			out[m.ActivationID] = h.recorded[m.ActivationID]
		}
		return out, nil
	}
	h.q.d.InvokerAlive = func(_ context.Context, inv string) (bool, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.alive[inv], h.checkErr
	}
	return h
}

func id(n int) whisk.ActivationID {
	return whisk.ActivationID(fmt.Sprintf("%032x", n))
}

// handTo makes activation n arrive and a container of inv fetch it.
func (h *lostHarness) handTo(n int, inv, ctr string, warm bool) {
	h.t.Helper()
	f := &fetch{req: rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: 1, Alive: true, Warm: warm,
		InvokerID: inv, ContainerID: ctr}, reply: make(chan *rpc.FetchResponse, 1)}
	h.q.handleFetch(h.now, f)
	h.settle()
	m := activation(string(id(n)), 1)
	h.msgWith(int64(n), m)
	if r := reply(h.t, f); r.Status != rpc.FetchOK || r.Activation.ActivationID != id(n) {
		h.t.Fatalf("fetch of %s/%s got %+v, want activation %s", inv, ctr, r, id(n))
	}
}

// step advances the clock, ticks, and lets checks and fail batches finish.
func (h *lostHarness) step(d time.Duration) {
	h.advance(d)
	h.tick()
	for h.q.checks > 0 {
		h.q.handleCheck(h.now, <-h.q.lostc)
	}
	h.drain()
}

func (h *lostHarness) failed() []whisk.Activation {
	h.harness.mu.Lock()
	defer h.harness.mu.Unlock()
	return append([]whisk.Activation(nil), h.records...)
}

func (h *lostHarness) wantFailed(ids ...whisk.ActivationID) []whisk.Activation {
	h.t.Helper()
	recs := h.failed()
	var got []whisk.ActivationID
	for _, r := range recs {
		got = append(got, r.ActivationID)
	}
	if len(got) != len(ids) {
		h.t.Fatalf("records of %v, want %v", got, ids)
	}
	for i := range ids {
		if got[i] != ids[i] {
			h.t.Fatalf("records of %v, want %v", got, ids)
		}
	}
	return recs
}

func TestContainerGoneFailsWhatItRan(t *testing.T) {
	h := newLostHarness(t)
	h.handTo(1, "invoker1", "c1", true)
	h.handTo(2, "invoker2", "c2", true)
	h.q.handleGone(h.now, ctrID{"invoker1", "c1"})
	h.step(time.Second) // within the grace: a record in flight may land
	h.wantFailed()
	h.step(time.Second)
	recs := h.wantFailed(id(1))
	r := recs[0]
	if r.StatusCode != whisk.StatusWhiskError || r.Response.Status != "whisk internal error" || r.Response.Success {
		t.Errorf("record status %d %q success=%v, want whisk internal error", r.StatusCode, r.Response.Status, r.Response.Success)
	}
	if msg := string(r.Response.Result); !strings.Contains(msg, "invoker1") || !strings.Contains(msg, "c1") {
		t.Errorf("record result %s does not name the invoker and the container", msg)
	}
	if r.Start != t0.UnixMilli() || r.End != h.now.UnixMilli() || r.Duration != 2000 {
		t.Errorf("record start %d end %d duration %d, want handed-out time, now, 2000", r.Start, r.End, r.Duration)
	}
	if h.q.Lost() != 1 {
		t.Errorf("Lost() = %d, want 1", h.q.Lost())
	}
	if _, ok := h.q.work[ctrID{"invoker1", "c1"}]; ok {
		t.Error("the lost container is still tracked")
	}
	// A second deletion report of the same container changes nothing.
	h.q.handleGone(h.now, ctrID{"invoker1", "c1"})
	h.step(3 * time.Second)
	h.wantFailed(id(1))
}

func TestContainerGoneAfterRecordsIsQuiet(t *testing.T) {
	// A container that finished its activation normally (the record is
	// stored) and whose key is then removed on idle: no error record.
	h := newLostHarness(t)
	h.handTo(1, "invoker1", "c1", true)
	h.recorded[id(1)] = true
	h.q.handleGone(h.now, ctrID{"invoker1", "c1"})
	h.step(3 * time.Second)
	h.wantFailed()
	if len(h.q.work) != 0 {
		t.Errorf("still tracked: %v", h.q.work)
	}
}

func TestHandOffProvesTheOldestFinished(t *testing.T) {
	// Concurrency 1: a container fetches again only once its activation
	// finished, so only the last one handed to it can still run when it
	// is lost; a finished one whose record the invoker wrote is quiet.
	h := newLostHarness(t)
	h.handTo(1, "invoker1", "c1", true)
	h.handTo(2, "invoker1", "c1", true)
	h.recorded[id(1)] = true
	h.q.handleGone(h.now, ctrID{"invoker1", "c1"})
	h.step(3 * time.Second)
	h.wantFailed(id(2))
}

func TestFinishedButUnrecordedIsFailed(t *testing.T) {
	// Activation 1 finished (the container fetched again) but its record
	// was still in the invoker's record writer when the invoker died: it
	// gets an error record too, never silence. Only the last keepFinished
	// finished ones are remembered: older ones cost nothing.
	h := newLostHarness(t)
	n := keepFinished + 3
	for i := 1; i <= n; i++ {
		h.handTo(i, "invoker1", "c1", true)
	}
	if got, want := len(h.q.work[ctrID{"invoker1", "c1"}].acts), keepFinished+1; got != want {
		t.Fatalf("remembered %d activations of one container, want %d", got, want)
	}
	h.q.handleGone(h.now, ctrID{"invoker1", "c1"})
	h.step(3 * time.Second)
	var want []whisk.ActivationID
	for i := n - keepFinished; i <= n; i++ {
		want = append(want, id(i))
	}
	h.wantFailed(want...)
}

func TestContainerOfLiveInvokerIsNotLost(t *testing.T) {
	h := newLostHarness(t)
	h.handTo(1, "invoker1", "c1", true)
	// The invoker lives (it removed the container, or is shutting down and
	// flushing its records, or got a new lease): it records what ran.
	h.alive["invoker1"] = true
	h.q.handleGone(h.now, ctrID{"invoker1", "c1"})
	h.step(3 * time.Second)
	h.wantFailed()
	// The container fetched after a deletion report: alive too.
	h.handTo(2, "invoker2", "c2", true)
	h.q.handleGone(h.now, ctrID{"invoker2", "c2"})
	f := &fetch{req: rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: 1, Alive: true, InvokerID: "invoker2", ContainerID: "c2"},
		reply: make(chan *rpc.FetchResponse, 1)}
	h.q.handleFetch(h.now, f)
	h.step(3 * time.Second)
	h.wantFailed()
	// Checked again after each grace while the invoker lives; once it is
	// gone too, what the container still ran is failed.
	h.step(3 * time.Second)
	h.wantFailed()
	delete(h.alive, "invoker1")
	h.step(3 * time.Second)
	h.wantFailed(id(1))
	// And a record that comes while the invoker lives ends the tracking.
	h.handTo(3, "invoker3", "c3", true)
	h.alive["invoker3"] = true
	h.q.handleGone(h.now, ctrID{"invoker3", "c3"})
	h.step(3 * time.Second)
	h.recorded[id(3)] = true
	h.step(3 * time.Second)
	if _, ok := h.q.work[ctrID{"invoker3", "c3"}]; ok {
		t.Error("a recorded activation is still tracked")
	}
	h.wantFailed(id(1))
}

func TestLostCheckErrorIsRetried(t *testing.T) {
	h := newLostHarness(t)
	h.handTo(1, "invoker1", "c1", true)
	h.checkErr = errors.New("store down")
	h.q.handleGone(h.now, ctrID{"invoker1", "c1"})
	h.step(3 * time.Second)
	h.wantFailed()
	h.checkErr = nil
	h.step(500 * time.Millisecond) // not before ten ticks
	h.wantFailed()
	h.step(time.Second)
	h.wantFailed(id(1))
}

func TestSafetyNetFailsActivationsWithoutRecord(t *testing.T) {
	h := newLostHarness(t)
	h.handTo(1, "invoker1", "c1", true)  // warm: due at the 60 s limit + LostAfter
	h.handTo(2, "invoker2", "c2", false) // cold: plus the init allowance
	h.handTo(3, "invoker3", "c3", true)
	h.recorded[id(3)] = true
	h.step(60*time.Second + DefaultLostAfter - time.Second)
	h.wantFailed()
	h.step(time.Second)
	recs := h.wantFailed(id(1))
	if msg := string(recs[0].Response.Result); !strings.Contains(msg, "c1") || !strings.Contains(msg, "invoker1") {
		t.Errorf("safety net record %s does not name the container and invoker", msg)
	}
	if _, ok := h.q.work[ctrID{"invoker3", "c3"}]; ok {
		t.Error("a recorded activation is still tracked")
	}
	h.step(initAllowance)
	h.wantFailed(id(1), id(2))
	if len(h.q.work) != 0 {
		t.Errorf("still tracked: %v", h.q.work)
	}
}

func TestTakenBackIsNotTracked(t *testing.T) {
	h := newLostHarness(t)
	f := &fetch{req: rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: 1, Alive: true, InvokerID: "invoker1", ContainerID: "c1"},
		reply: make(chan *rpc.FetchResponse, 1)}
	h.q.handleFetch(h.now, f)
	h.msgWith(1, activation(string(id(1)), 1))
	h.q.handleCancel(f) // the container's call went away before the answer reached it
	if len(h.q.work) != 0 {
		t.Fatalf("an activation taken back is tracked: %v", h.q.work)
	}
	if len(h.q.buf) != 1 {
		t.Fatalf("buffer %d, want the activation back", len(h.q.buf))
	}
}

func TestNoTrackingWithoutRecorded(t *testing.T) {
	h := newHarness(t)
	f := &fetch{req: rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: 1, Alive: true, InvokerID: "invoker1", ContainerID: "c1"},
		reply: make(chan *rpc.FetchResponse, 1)}
	h.q.handleFetch(h.now, f)
	h.msg(1, 1)
	if len(h.q.work) != 0 {
		t.Fatalf("tracked without Deps.Recorded: %v", h.q.work)
	}
}

// A queue that tracks handed-out activations wakes for their checks, and
// only then: at a gone container's grace, at the safety net's deadline.
func TestLostChecksWakeTheQueue(t *testing.T) {
	h := newLostHarness(t)
	h.handTo(1, "invoker1", "c1", true)
	due := h.now.Add(time.Duration(meta(1).Limits.Timeout)*time.Millisecond + DefaultLostAfter)
	if h.q.lostWake.IsZero() || h.q.lostWake.After(due) {
		t.Fatalf("lost wake-up at %v, want the safety net's deadline %v at the latest", h.q.lostWake.Sub(t0), due.Sub(t0))
	}
	h.q.handleGone(h.now, ctrID{"invoker1", "c1"})
	if w := h.q.nextWake(h.now); w.After(h.now.Add(DefaultGoneGrace)) {
		t.Fatalf("next wake-up in %v, want the gone container's grace (%v)", w.Sub(h.now), DefaultGoneGrace)
	}
	// Ticks before the grace start no check.
	h.step(DefaultGoneGrace / 2)
	if h.q.checks != 0 || len(h.failed()) != 0 {
		t.Fatal("checked before the grace")
	}
	h.step(DefaultGoneGrace / 2)
	h.wantFailed(id(1))
	if len(h.q.work) == 0 && !h.q.lostWake.IsZero() && h.q.nextWake(h.now).Before(h.now.Add(time.Second)) {
		// Nothing is tracked any more: a stale lower bound costs one
		// early wake-up at most, which checkLost clears.
		h.step(DefaultTick)
		if !h.q.lostWake.IsZero() {
			t.Fatalf("lost wake-up %v with nothing tracked", h.q.lostWake.Sub(t0))
		}
	}
}
