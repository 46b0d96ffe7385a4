package queue

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// harness drives a Queue's owner methods directly, as Run's goroutine
// would, with an injected clock: no goroutine runs the queue, nothing
// sleeps. Counts run on the queue's helper goroutine; every step waits for
// them (settle), as if etcd answered at once.
type harness struct {
	t          *testing.T
	q          *Queue
	now        time.Time
	containers int // what CountContainers answers
	nsOther    int // the namespace's containers of other actions
	countErr   error
	counts     int // CountContainers calls
	creates    []CreateRequest

	mu      sync.Mutex
	records []whisk.Activation
	failErr error
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func meta(rev int64) whisk.ActionMeta {
	return whisk.ActionMeta{Namespace: "guest", Name: "hello", Rev: rev, Kind: "python:3",
		Limits: whisk.Limits{Timeout: 60000, Memory: 256, Concurrency: 1}}
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, now: t0}
	q, err := New(Config{Action: meta(1), NamespaceLimit: 100}, Deps{
		Now:       func() time.Time { return h.now },
		Subscribe: func(context.Context) (bus.Consumer, error) { return nil, errors.New("unused") },
		CountContainers: func(context.Context, int64) (int, error) {
			h.counts++
			return h.containers, h.countErr
		},
		CountNamespace: func(context.Context) (int, int, error) { return h.containers + h.nsOther, 0, nil },
		Create:         func(r CreateRequest) { h.creates = append(h.creates, r) },
		Fail: func(_ context.Context, _ whisk.ActivationMessage, rec whisk.Activation) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.failErr != nil {
				return h.failErr
			}
			h.records = append(h.records, rec)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.q = q
	return h
}

func (h *harness) advance(d time.Duration) { h.now = h.now.Add(d) }
func (h *harness) tick()                   { h.q.tick(h.now); h.settle() }

// settle lets a count the queue started finish, as Run would.
func (h *harness) settle() {
	for h.q.counting {
		h.q.handleCount(h.now, <-h.q.countc)
	}
}

func activation(id string, rev int64) whisk.ActivationMessage {
	return whisk.ActivationMessage{ActivationID: whisk.ActivationID(id), Action: meta(rev), Subject: "guest", ControllerID: "c0"}
}

func (h *harness) msg(off int64, rev int64) {
	h.msgWith(off, activation(strings.Repeat("a", 31)+string(rune('0'+off%10)), rev))
}

func (h *harness) msgWith(off int64, m whisk.ActivationMessage) {
	h.q.handleMessage(h.now, &inbound{off: off, msg: m})
	h.settle()
}

func (h *harness) fetch(rev int64, alive, warm bool, lastMs int64) *fetch {
	f := &fetch{req: rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: rev, Alive: alive, Warm: warm, LastDurationMs: lastMs},
		reply: make(chan *rpc.FetchResponse, 1)}
	h.q.handleFetch(h.now, f)
	h.settle()
	return f
}

func (h *harness) result(i int, ok, developer bool) {
	h.q.handleResult(h.now, &CreationResult{ID: h.creates[i].ID, OK: ok, Developer: developer, Error: "bad image"})
	h.settle()
}

// drain lets the queue's fail batches finish, as Run would.
func (h *harness) drain() {
	for h.q.failing > 0 {
		h.q.handleFailed(<-h.q.failed)
	}
}

func (h *harness) state(want State) {
	h.t.Helper()
	if h.q.st != want {
		h.t.Fatalf("state %v, want %v", h.q.st, want)
	}
	if h.q.State() != want {
		h.t.Fatalf("State() %v, want %v", h.q.State(), want)
	}
}

func reply(t *testing.T, f *fetch) *rpc.FetchResponse {
	t.Helper()
	select {
	case r := <-f.reply:
		return r
	default:
		t.Fatal("fetch not answered")
		return nil
	}
}

func noReply(t *testing.T, f *fetch) {
	t.Helper()
	select {
	case r := <-f.reply:
		t.Fatalf("fetch answered %+v, want parked", r)
	default:
	}
}

func TestTransitions(t *testing.T) {
	cases := []struct {
		name  string
		steps func(h *harness)
		want  State
	}{
		{"new queue runs", func(h *harness) {}, Running},
		{"running, no work, quiet for two parks → idle", func(h *harness) {
			h.advance(2 * time.Second)
			h.tick()
		}, Idle},
		{"running, a parked fetch keeps it running", func(h *harness) {
			h.fetch(1, true, false, 0)
			h.advance(900 * time.Millisecond)
			h.tick()
			h.advance(1500 * time.Millisecond)
			h.fetch(1, true, false, 0)
			h.tick()
		}, Running},
		{"idle + message → running", func(h *harness) {
			h.advance(2 * time.Second)
			h.tick()
			h.msg(0, 1)
		}, Running},
		{"idle + live fetch → running", func(h *harness) {
			h.advance(2 * time.Second)
			h.tick()
			h.fetch(1, true, false, 0)
		}, Running},
		{"idle for the idle timeout, no containers → removed", func(h *harness) {
			h.advance(2 * time.Second)
			h.tick()
			h.advance(30 * time.Second)
			h.tick()
		}, Removed},
		{"idle for the idle timeout, a container still registered → idle", func(h *harness) {
			h.advance(2 * time.Second)
			h.tick()
			h.containers = 1
			h.advance(30 * time.Second)
			h.tick()
		}, Idle},
		{"idle, count fails → idle", func(h *harness) {
			h.advance(2 * time.Second)
			h.tick()
			h.countErr = errors.New("etcd down")
			h.advance(30 * time.Second)
			h.tick()
		}, Idle},
		{"retryable creation failure, no container → flushing", func(h *harness) {
			h.msg(0, 1)
			h.result(0, false, false)
		}, Flushing},
		{"developer creation failure, no container → flushing", func(h *harness) {
			h.msg(0, 1)
			h.result(0, false, true)
			h.drain()
		}, Flushing},
		{"creation failure with containers → running", func(h *harness) {
			h.msg(0, 1)
			h.fetch(1, true, false, 0) // takes it; a container exists
			h.msg(1, 1)
			h.containers = 1
			h.advance(200 * time.Millisecond)
			h.tick() // stale → another creation
			h.result(len(h.creates)-1, false, false)
		}, Running},
		{"flushing + creation success → running", func(h *harness) {
			h.msg(0, 1)
			h.result(0, false, false)
			h.advance(time.Second)
			h.tick() // retries
			h.result(1, true, false)
		}, Running},
		{"flushing + newer revision → running", func(h *harness) {
			h.msg(0, 1)
			h.result(0, false, true)
			h.drain()
			h.msg(1, 2)
		}, Running},
		{"flushing, empty, no arrival for the flush grace → idle", func(h *harness) {
			h.msg(0, 1)
			h.result(0, false, true)
			h.drain()
			h.advance(60 * time.Second)
			h.tick()
		}, Idle},
		{"flushing, retryable, activations kept until retention → still flushing", func(h *harness) {
			h.msg(0, 1)
			h.result(0, false, false)
			h.advance(30 * time.Second)
			h.tick()
		}, Flushing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			c.steps(h)
			h.drain()
			h.state(c.want)
		})
	}
}

func TestFirstMessageAsksAtOnce(t *testing.T) {
	h := newHarness(t)
	h.msg(0, 1)
	if len(h.creates) != 1 {
		t.Fatalf("%d creations after the first message, want 1 without a tick", len(h.creates))
	}
	if h.creates[0].Action.Rev != 1 || h.creates[0].Done == nil {
		t.Fatalf("bad request %+v", h.creates[0])
	}
	h.msg(1, 1)
	h.tick()
	if len(h.creates) != 1 {
		t.Fatalf("%d creations, want 1 (one in flight)", len(h.creates))
	}
}

func TestWarmPathMakesNoCount(t *testing.T) {
	h := newHarness(t)
	f := h.fetch(1, true, false, 0) // a container is polling
	h.msg(0, 1)
	if r := reply(t, f); r.Status != rpc.FetchOK {
		t.Fatalf("parked fetch got %+v", r)
	}
	if h.counts != 0 || len(h.creates) != 0 {
		t.Fatalf("warm hand-off made %d counts and %d creations", h.counts, len(h.creates))
	}
}

func TestIdleQueueDoesNotCount(t *testing.T) {
	h := newHarness(t)
	for range 50 {
		h.advance(100 * time.Millisecond)
		h.tick()
	}
	if h.counts != 0 {
		t.Fatalf("%d counts on a queue without work", h.counts)
	}
}

func TestParkedFetchGetsActivationAtOnce(t *testing.T) {
	h := newHarness(t)
	cold := h.fetch(1, true, false, 0)
	warm := h.fetch(1, true, true, 0)
	noReply(t, cold)
	noReply(t, warm)
	h.msg(7, 1)
	r := reply(t, warm) // warm containers first
	if r.Status != rpc.FetchOK || r.Activation == nil || r.Activation.Action.Name != "hello" {
		t.Fatalf("warm fetch got %+v", r)
	}
	noReply(t, cold)
	if h.q.offs.mark != 7 {
		t.Fatalf("watermark %d, want 7", h.q.offs.mark)
	}
	h.advance(time.Second)
	h.tick()
	if r := reply(t, cold); r.Status != rpc.FetchEmpty {
		t.Fatalf("parked fetch after the park time got %+v", r)
	}
}

func TestOffsetsCommitOnlyHandedPrefix(t *testing.T) {
	h := newHarness(t)
	h.msg(0, 1)
	h.msg(1, 1)
	h.msg(2, 1)
	if h.q.offs.mark != -1 {
		t.Fatalf("mark %d before any hand-off", h.q.offs.mark)
	}
	reply(t, h.fetch(1, true, false, 0))
	if h.q.offs.mark != 0 {
		t.Fatalf("mark %d, want 0", h.q.offs.mark)
	}
	// Offset 1 is given to a fetch whose caller goes away: it comes back
	// at the head and stays outstanding.
	f := h.fetch(1, true, false, 0)
	if h.q.offs.mark != 1 {
		t.Fatalf("mark %d, want 1", h.q.offs.mark)
	}
	h.q.handleCancel(f)
	if len(h.q.buf) != 2 || h.q.buf[0].off != 1 {
		t.Fatalf("cancelled activation not put back at the head: %d buffered", len(h.q.buf))
	}
	r := reply(t, h.fetch(1, true, false, 0))
	if r.Status != rpc.FetchOK || h.q.offs.mark != 1 {
		t.Fatalf("refetch %+v, mark %d", r, h.q.offs.mark)
	}
	if h.q.offs.outstanding() != 1 {
		t.Fatalf("%d outstanding, want 1", h.q.offs.outstanding())
	}
}

func TestCancelWhileParked(t *testing.T) {
	h := newHarness(t)
	f := h.fetch(1, true, false, 0)
	h.q.handleCancel(f)
	h.msg(0, 1)
	noReply(t, f)
	if len(h.q.buf) != 1 {
		t.Fatalf("activation went to a cancelled fetch")
	}
}

func TestRevisions(t *testing.T) {
	h := newHarness(t)
	old := h.fetch(1, true, false, 0)
	h.msg(0, 2) // a newer revision: adopted
	if h.q.meta.Rev != 2 {
		t.Fatalf("rev %d, want 2", h.q.meta.Rev)
	}
	if r := reply(t, old); r.Status != rpc.FetchMismatch {
		t.Fatalf("parked old-revision fetch got %+v", r)
	}
	if r := reply(t, h.fetch(1, true, false, 0)); r.Status != rpc.FetchMismatch {
		t.Fatalf("old-revision fetch got %+v", r)
	}
	h.msg(1, 1) // an older message runs on the new revision
	r := reply(t, h.fetch(2, true, false, 0))
	if r.Status != rpc.FetchOK || r.Activation.Action.Rev != 2 {
		t.Fatalf("fetch got %+v", r)
	}
}

func TestNotAliveFetch(t *testing.T) {
	h := newHarness(t)
	h.msg(0, 1)
	if r := reply(t, h.fetch(1, false, false, 0)); r.Status != rpc.FetchEmpty {
		t.Fatalf("alive=false got %+v", r)
	}
	if len(h.q.buf) != 1 {
		t.Fatal("alive=false took an activation")
	}
}

func TestAverageDuration(t *testing.T) {
	h := newHarness(t)
	for i := range minDurations - 1 {
		h.fetch(1, true, false, 100)
		if got := h.q.avg(); got != 0 {
			t.Fatalf("avg after %d runs: %v, want unknown (0)", i+1, got)
		}
	}
	h = newHarness(t)
	for i := range 15 {
		h.fetch(1, true, false, int64(100*(i+1)))
	}
	// last 10: 600..1500 → 1050 ms
	if got := h.q.avg(); got != 1050*time.Millisecond {
		t.Fatalf("avg %v, want 1.05s", got)
	}
}

func TestStaleFollowsAverage(t *testing.T) {
	h := newHarness(t)
	h.msg(0, 1)
	h.advance(time.Second)
	if s := h.q.snapshot(h.now, 0, 0, 0); s.Stale != 1 {
		t.Fatalf("stale %d with no average, want 1", s.Stale)
	}
	for range minDurations { // leaving containers report 5 s each
		h.fetch(1, false, false, 5000)
	}
	if s := h.q.snapshot(h.now, 0, 0, 0); s.Stale != 0 {
		t.Fatalf("stale %d after 1 s of a 5 s action, want 0", s.Stale)
	}
}

func TestRetention(t *testing.T) {
	h := newHarness(t)
	h.msg(0, 1) // asks for a container that never comes
	h.advance(30 * time.Second)
	h.msg(1, 1)
	h.advance(30 * time.Second)
	h.failErr = errors.New("store down")
	h.tick()
	h.drain()
	if len(h.q.buf) != 1 || len(h.q.refail) != 1 || h.q.offs.mark != -1 {
		t.Fatalf("after a failed store: %d buffered, %d to refail, mark %d", len(h.q.buf), len(h.q.refail), h.q.offs.mark)
	}
	h.failErr = nil
	h.advance(100 * time.Millisecond)
	h.tick()
	h.drain()
	if len(h.records) != 1 || h.q.offs.mark != 0 {
		t.Fatalf("%d records, mark %d", len(h.records), h.q.offs.mark)
	}
	rec := h.records[0]
	if rec.StatusCode != whisk.StatusWhiskError || rec.Response.Status != "whisk internal error" {
		t.Fatalf("record %+v", rec)
	}
	var res struct{ Error string }
	if err := json.Unmarshal(rec.Response.Result, &res); err != nil || res.Error != whisk.MsgNotInitiated(60000) {
		t.Fatalf("result %s, want %q", rec.Response.Result, whisk.MsgNotInitiated(60000))
	}
	if rec.Namespace != "guest" || rec.Name != "hello" || rec.ActivationID == "" {
		t.Fatalf("record names %+v", rec)
	}
}

func TestDeveloperFailure(t *testing.T) {
	h := newHarness(t)
	h.msg(0, 1)
	h.msg(1, 1)
	h.result(0, false, true)
	h.drain()
	h.state(Flushing)
	h.msg(2, 1) // arrives while flushing a developer error: failed at once
	h.drain()
	if len(h.records) != 3 || h.q.offs.mark != 2 {
		t.Fatalf("%d records, mark %d", len(h.records), h.q.offs.mark)
	}
	for _, r := range h.records {
		if r.StatusCode != whisk.StatusDeveloperError || !strings.Contains(string(r.Response.Result), "bad image") {
			t.Fatalf("record %+v %s", r, r.Response.Result)
		}
	}
}

func TestFlushingRetriesAtTheFlushRate(t *testing.T) {
	h := newHarness(t)
	h.msg(0, 1)
	h.result(0, false, false)
	for range 9 {
		h.advance(100 * time.Millisecond)
		h.tick()
	}
	if len(h.creates) != 1 {
		t.Fatalf("%d creations within the flush retry", len(h.creates))
	}
	h.advance(100 * time.Millisecond)
	h.tick()
	if len(h.creates) != 2 {
		t.Fatalf("%d creations, want a retry after 1 s", len(h.creates))
	}
	if len(h.q.buf) != 1 {
		t.Fatal("retryable failure dropped the activation")
	}
}

// fakeConsumer is a bus.Consumer fed by the test.
type fakeConsumer struct {
	recs   chan bus.Record
	errs   chan error // Poll fails with the error sent here, from then on
	mu     sync.Mutex
	commit []int64
	closed chan struct{}
}

func newFakeConsumer() *fakeConsumer {
	return &fakeConsumer{recs: make(chan bus.Record, 16), errs: make(chan error, 1), closed: make(chan struct{})}
}

func (c *fakeConsumer) Notify(func()) bool { return true } // the reader polls

func (c *fakeConsumer) Poll(ctx context.Context, _ int) ([]bus.Record, error) {
	select {
	case r := <-c.recs:
		return []bus.Record{r}, nil
	case err := <-c.errs:
		c.errs <- err
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *fakeConsumer) fail(err error) { c.errs <- err }

func (c *fakeConsumer) Commit(_ context.Context, off int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commit = append(c.commit, off)
	return nil
}

func (c *fakeConsumer) Close() error { close(c.closed); return nil }

func (c *fakeConsumer) commits() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int64(nil), c.commit...)
}

func (c *fakeConsumer) publish(t *testing.T, off int64, m whisk.ActivationMessage) {
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	c.recs <- bus.Record{Offset: off, Value: b}
}

type runHarness struct {
	q       *Queue
	c       *fakeConsumer
	ticks   chan time.Time
	creates chan CreateRequest
	done    chan error
}

func startQueue(t *testing.T) *runHarness {
	h := &runHarness{c: newFakeConsumer(), ticks: make(chan time.Time), creates: make(chan CreateRequest, 16), done: make(chan error, 1)}
	q, err := New(Config{Action: meta(1), NamespaceLimit: 100}, Deps{
		Now:             func() time.Time { return t0 },
		Subscribe:       func(context.Context) (bus.Consumer, error) { return h.c, nil },
		CountContainers: func(context.Context, int64) (int, error) { return 0, nil },
		CountNamespace:  func(context.Context) (int, int, error) { return 0, 0, nil },
		Create:          func(r CreateRequest) { h.creates <- r },
		Fail:            func(context.Context, whisk.ActivationMessage, whisk.Activation) error { return nil },
		Ticker:          func(time.Duration) (<-chan time.Time, func()) { return h.ticks, func() {} },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.q = q
	go func() { h.done <- q.Run(context.Background()) }()
	t.Cleanup(func() {
		q.Stop()
		<-q.Done()
	})
	return h
}

// patience bounds the tests' waits for an event: a guard against a hang,
// never what a test measures, so it is generous for a loaded machine.
const patience = 30 * time.Second

func wait[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(patience):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func TestRunHandOffAndStop(t *testing.T) {
	h := startQueue(t)
	ctx := context.Background()
	h.c.publish(t, 0, activation("00000000000000000000000000000000", 1))
	cr := wait(t, h.creates, "the first creation")
	h.c.publish(t, 1, activation("00000000000000000000000000000001", 1))
	r, err := h.q.Fetch(ctx, &rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: 1, Alive: true})
	if err != nil || r.Status != rpc.FetchOK || r.Activation.ActivationID != "00000000000000000000000000000000" {
		t.Fatalf("fetch: %+v %v", r, err)
	}
	cr.Done(CreationResult{ID: cr.ID, OK: true})
	h.q.Stop()
	wait(t, h.done, "Run to return")
	wait(t, h.c.closed, "the consumer to close")
	cs := h.c.commits()
	if len(cs) == 0 || cs[len(cs)-1] != 0 {
		t.Fatalf("commits %v, want the last to be 0 (offset 1 was never handed)", cs)
	}
	if h.q.State() != Removed {
		t.Fatalf("state %v", h.q.State())
	}
	r, err = h.q.Fetch(ctx, &rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: 1, Alive: true})
	if err != nil || r.Status != rpc.FetchNoQueue {
		t.Fatalf("fetch after removal: %+v %v", r, err)
	}
}

func TestRunParkedFetchAndCancel(t *testing.T) {
	h := startQueue(t)
	got := make(chan *rpc.FetchResponse)
	go func() {
		r, _ := h.q.Fetch(context.Background(), &rpc.FetchRequest{Rev: 1, Alive: true})
		got <- r
	}()
	// Parked or not, the fetch gets the arrival without a tick.
	h.c.publish(t, 0, activation("00000000000000000000000000000000", 1))
	if r := wait(t, got, "the parked fetch"); r.Status != rpc.FetchOK {
		t.Fatalf("parked fetch got %+v", r)
	}
	// A fetch whose caller gives up gets nothing and loses nothing.
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.q.Fetch(cctx, &rpc.FetchRequest{Rev: 1, Alive: true}); err == nil {
		t.Fatal("cancelled fetch succeeded")
	}
}

func TestRunAbandonCommitsNothingUnhanded(t *testing.T) {
	h := startQueue(t)
	h.c.publish(t, 0, activation("00000000000000000000000000000000", 1))
	wait(t, h.creates, "the first creation")
	h.q.Abandon()
	wait(t, h.done, "Run to return")
	wait(t, h.c.closed, "the consumer to close")
	if cs := h.c.commits(); len(cs) != 0 {
		t.Fatalf("abandoned queue committed %v", cs)
	}
}

func TestRunIdleRemoval(t *testing.T) {
	h := newHarness(t) // for the clock
	c := newFakeConsumer()
	ticks := make(chan time.Time)
	var mu sync.Mutex
	now := t0
	q, err := New(Config{Action: meta(1), IdleTimeout: 5 * time.Second}, Deps{
		Now:             func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		Subscribe:       func(context.Context) (bus.Consumer, error) { return c, nil },
		CountContainers: func(context.Context, int64) (int, error) { return 0, nil },
		CountNamespace:  func(context.Context) (int, int, error) { return 0, 0, nil },
		Create:          func(CreateRequest) {},
		Fail:            h.q.d.Fail,
		Ticker:          func(time.Duration) (<-chan time.Time, func()) { return ticks, func() {} },
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- q.Run(context.Background()) }()
	for _, step := range []time.Duration{3 * time.Second, 6 * time.Second} {
		mu.Lock()
		now = now.Add(step)
		mu.Unlock()
		select {
		case ticks <- now:
		case <-done:
			t.Fatal("Run returned early")
		}
	}
	select {
	case <-done:
	case <-time.After(patience):
		t.Fatalf("not removed; state %v", q.State())
	}
	wait(t, c.closed, "the consumer to close")
	if q.State() != Removed {
		t.Fatalf("state %v", q.State())
	}
}

// An old revision's creation that fails after the queue adopted a newer
// revision (the invoker saw the action change) must not fail the new
// revision's activations, nor those queued before the update: they run on
// the current code.
func TestOldRevisionCreationFailureIgnored(t *testing.T) {
	h := newHarness(t)
	h.msg(0, 1) // rev 1: C1 in flight
	if len(h.creates) != 1 || h.creates[0].Action.Rev != 1 {
		t.Fatalf("creations %+v", h.creates)
	}
	h.msg(1, 2) // the action was updated: rev 2 adopted
	if len(h.creates) != 2 || h.creates[1].Action.Rev != 2 {
		t.Fatalf("no creation for rev 2 (C1 is of rev 1): %d creations", len(h.creates))
	}
	h.result(0, false, true) // C1's "action changed" ack, as a developer error
	h.drain()
	h.state(Running)
	if len(h.records) != 0 || len(h.q.buf) != 2 {
		t.Fatalf("%d records, %d buffered after an old revision's failure", len(h.records), len(h.q.buf))
	}
	h.msg(2, 2) // later arrivals are not failed either
	h.drain()
	if len(h.records) != 0 || len(h.q.buf) != 3 {
		t.Fatalf("arrival failed: %d records, %d buffered", len(h.records), len(h.q.buf))
	}
	// The rev-2 container runs them all, the rev-1 message on rev 2.
	h.result(1, true, false)
	for i := range 3 {
		r := reply(t, h.fetch(2, true, false, 0))
		if r.Status != rpc.FetchOK || r.Activation.Action.Rev != 2 {
			t.Fatalf("fetch %d: %+v", i, r)
		}
	}
}

// A creation result carrying a newer revision of the action (the invoker
// found it changed) makes the queue adopt it: queued activations run on
// the new code instead of failing.
func TestCreationResultAdoptsNewerRevision(t *testing.T) {
	h := newHarness(t)
	h.msg(0, 1)
	h.q.handleResult(h.now, &CreationResult{ID: h.creates[0].ID, Developer: true, Error: "action changed", Action: meta(2)})
	h.settle()
	h.drain()
	h.state(Running)
	if h.q.meta.Rev != 2 || len(h.records) != 0 || len(h.q.buf) != 1 {
		t.Fatalf("rev %d, %d records, %d buffered", h.q.meta.Rev, len(h.records), len(h.q.buf))
	}
	if len(h.creates) != 2 || h.creates[1].Action.Rev != 2 {
		t.Fatalf("no creation of rev 2 at once: %+v", h.creates)
	}
}

// A message published long ago (a fail-over) is retained from its publish
// time, and its record reports the queued time from there, like the
// invoker's records do.
func TestRetentionFromPublish(t *testing.T) {
	h := newHarness(t)
	m := activation("00000000000000000000000000000001", 1)
	m.Published = h.now.Add(-50 * time.Second).UnixMilli()
	h.msgWith(0, m)
	h.advance(10 * time.Second)
	h.tick()
	h.drain()
	if len(h.records) != 1 {
		t.Fatalf("%d records 60 s after the publish, want 1", len(h.records))
	}
	var ann struct{ WaitTime int64 }
	for _, a := range h.records[0].Annotations {
		if a.Key == whisk.AnnWaitTime {
			_ = json.Unmarshal(a.Value, &ann.WaitTime)
		}
	}
	if ann.WaitTime != 60000 {
		t.Fatalf("waitTime %d, want 60000", ann.WaitTime)
	}
	// A publish time ahead of the queue's clock counts from now.
	m.Published = h.now.Add(time.Hour).UnixMilli()
	if e := enqueued(m, h.now); !e.Equal(h.now) {
		t.Fatalf("enqueued %v, want now", e)
	}
}

// The namespace limit leaves no room and the action has no container: the
// arrival fails at once with OpenWhisk's concurrency message instead of
// waiting the whole retention.
func TestNamespaceThrottleFailsAtOnce(t *testing.T) {
	h := newHarness(t)
	h.nsOther = 100 // the namespace's limit is 100
	h.msg(0, 1)
	h.drain()
	if len(h.creates) != 0 {
		t.Fatalf("%d creations past the namespace limit", len(h.creates))
	}
	if len(h.records) != 1 || len(h.q.buf) != 0 || h.q.offs.mark != 0 {
		t.Fatalf("%d records, %d buffered, mark %d", len(h.records), len(h.q.buf), h.q.offs.mark)
	}
	rec := h.records[0]
	var res struct{ Error string }
	if err := json.Unmarshal(rec.Response.Result, &res); err != nil || rec.StatusCode != whisk.StatusWhiskError ||
		res.Error != whisk.MsgTooManyConcurrent(100, 100) {
		t.Fatalf("record %d %s", rec.StatusCode, rec.Response.Result)
	}
	if th := whisk.ThrottleOfRecord(rec); th == nil || th.Limit != whisk.LimitConcurrentContainers ||
		th.Count != 100 || th.Allowed != 100 || th.RetryAfter != ConcurrentRetryAfter {
		t.Fatalf("throttle marker %+v", th)
	}
	// With a container of its own the action keeps its activations.
	h.containers = 1
	h.nsOther = 99
	h.advance(time.Second) // the counts are stale: the arrival waits for fresh ones
	h.msg(1, 1)
	h.msg(2, 1)
	h.advance(200 * time.Millisecond)
	h.tick()
	h.drain()
	if len(h.records) != 1 || len(h.q.buf) != 2 {
		t.Fatalf("%d records, %d buffered with a container", len(h.records), len(h.q.buf))
	}
}

// A queue re-created for a fetch knows only the action's name and a
// revision: it asks for no container and hands no message its incomplete
// metadata until a message brings the metadata.
func TestProvisionalQueue(t *testing.T) {
	h := &harness{t: t, now: t0}
	full := newHarness(t)
	q, err := New(Config{Action: whisk.ActionMeta{Namespace: "guest", Name: "hello", Rev: 2}, Provisional: true, NamespaceLimit: 100}, full.q.d)
	if err != nil {
		t.Fatal(err)
	}
	h.q, h.creates = q, nil
	q.d.Create = func(r CreateRequest) { h.creates = append(h.creates, r) }
	h.msg(0, 1) // older: keeps its own metadata
	r := reply(t, h.fetch(2, true, false, 0))
	if r.Status != rpc.FetchOK || r.Activation.Action.Kind != "python:3" || r.Activation.Action.Rev != 1 {
		t.Fatalf("fetch %+v", r.Activation)
	}
	h.msg(1, 1)
	h.advance(time.Second)
	h.tick()
	if len(h.creates) != 0 {
		t.Fatalf("a provisional queue asked for %d containers", len(h.creates))
	}
	h.msg(2, 2) // brings the metadata
	if q.provisional || q.meta.Kind != "python:3" {
		t.Fatalf("meta %+v provisional %v", q.meta, q.provisional)
	}
	h.advance(time.Second)
	h.tick()
	if len(h.creates) == 0 || h.creates[0].Action.Kind != "python:3" {
		t.Fatalf("creations %+v", h.creates)
	}
}

// runQueue starts a queue on a fake consumer with the given deps changes.
func runQueue(t *testing.T, cfg Config, edit func(*Deps)) *runHarness {
	h := &runHarness{c: newFakeConsumer(), ticks: make(chan time.Time), creates: make(chan CreateRequest, 16), done: make(chan error, 1)}
	if cfg.Action.Name == "" {
		cfg.Action = meta(1)
	}
	if cfg.NamespaceLimit == 0 {
		cfg.NamespaceLimit = 100
	}
	d := Deps{
		Now:             func() time.Time { return t0 },
		Subscribe:       func(context.Context) (bus.Consumer, error) { return h.c, nil },
		CountContainers: func(context.Context, int64) (int, error) { return 0, nil },
		CountNamespace:  func(context.Context) (int, int, error) { return 0, 0, nil },
		Create:          func(r CreateRequest) { h.creates <- r },
		Fail:            func(context.Context, whisk.ActivationMessage, whisk.Activation) error { return nil },
		Ticker:          func(time.Duration) (<-chan time.Time, func()) { return h.ticks, func() {} },
	}
	if edit != nil {
		edit(&d)
	}
	q, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	h.q = q
	go func() { h.done <- q.Run(context.Background()) }()
	t.Cleanup(func() {
		q.Stop()
		<-q.Done()
	})
	return h
}

// etcd hangs: counts block until their deadline. The owner goroutine must
// keep handing activations to containers, ticking and obeying Stop.
func TestRunCountsDoNotBlockTheOwner(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	deadlines := make(chan bool, 16)
	block := func(ctx context.Context) {
		_, ok := ctx.Deadline()
		select {
		case deadlines <- ok:
		default:
		}
		select {
		case <-ctx.Done():
		case <-release:
		}
	}
	h := runQueue(t, Config{CountTimeout: 50 * time.Millisecond}, func(d *Deps) {
		d.CountContainers = func(ctx context.Context, _ int64) (int, error) { block(ctx); return 0, errors.New("etcd down") }
		d.CountNamespace = func(ctx context.Context) (int, int, error) { block(ctx); return 0, 0, errors.New("etcd down") }
	})
	h.c.publish(t, 0, activation("00000000000000000000000000000000", 1))
	h.c.publish(t, 1, activation("00000000000000000000000000000001", 1))
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		r, err := h.q.Fetch(ctx, &rpc.FetchRequest{Rev: 1, Alive: true, Warm: true})
		cancel()
		if err != nil || r.Status != rpc.FetchOK {
			t.Fatalf("fetch %d while etcd hangs: %+v %v", i, r, err)
		}
	}
	select {
	case h.ticks <- t0.Add(time.Second):
	case <-time.After(patience):
		t.Fatal("the owner takes no tick while etcd hangs")
	}
	if !wait(t, deadlines, "a count") {
		t.Fatal("a count without a deadline")
	}
	h.q.Stop()
	wait(t, h.done, "Run to return while etcd hangs")
}

// The caller of a fetch went away just as the activation came: it goes
// back to the head of the queue instead of to the gone caller.
func TestRunFetchGivesBackWhenCallerGone(t *testing.T) {
	h := runQueue(t, Config{}, nil)
	h.c.publish(t, 0, activation("00000000000000000000000000000000", 1))
	wait(t, h.creates, "the first creation")
	// A context that reports its end but whose Done never fires: the
	// reply and the end are both there, whichever select sees first.
	gone := &goneCtx{Context: context.Background()}
	gone.ended.Store(true)
	if r, err := h.q.Fetch(gone, &rpc.FetchRequest{Rev: 1, Alive: true}); err == nil {
		t.Fatalf("fetch of a gone caller returned %+v", r)
	}
	r, err := h.q.Fetch(context.Background(), &rpc.FetchRequest{Rev: 1, Alive: true})
	if err != nil || r.Status != rpc.FetchOK || r.Activation.ActivationID != "00000000000000000000000000000000" {
		t.Fatalf("the activation was not put back: %+v %v", r, err)
	}
}

type goneCtx struct {
	context.Context
	ended atomic.Bool
}

func (c *goneCtx) Err() error {
	if c.ended.Load() {
		return context.Canceled
	}
	return nil
}

// The action's topic was deleted (and maybe re-created): the queue ends
// instead of polling a dead consumer forever.
func TestRunTopicDeletedEndsQueue(t *testing.T) {
	h := runQueue(t, Config{}, nil)
	h.c.publish(t, 0, activation("00000000000000000000000000000000", 1))
	wait(t, h.creates, "the first creation")
	h.c.fail(whisk.E("memory.Poll", whisk.NotFound, "", errors.New("topic deleted")))
	wait(t, h.done, "Run to return after the topic was deleted")
	if h.q.State() != Removed {
		t.Fatalf("state %v", h.q.State())
	}
	// Subscribing to a topic that does not exist ends the queue too.
	h2 := runQueue(t, Config{}, func(d *Deps) {
		d.Subscribe = func(context.Context) (bus.Consumer, error) {
			return nil, whisk.E("memory.Subscribe", whisk.NotFound, "", errors.New("no topic"))
		}
	})
	wait(t, h2.done, "Run to return without a topic")
}

// Abandon still commits what was handed out: those activations ran.
func TestRunAbandonCommitsHanded(t *testing.T) {
	h := runQueue(t, Config{}, nil)
	h.c.publish(t, 0, activation("00000000000000000000000000000000", 1))
	h.c.publish(t, 1, activation("00000000000000000000000000000001", 1))
	r, err := h.q.Fetch(context.Background(), &rpc.FetchRequest{Rev: 1, Alive: true})
	if err != nil || r.Status != rpc.FetchOK {
		t.Fatalf("fetch %+v %v", r, err)
	}
	h.q.Abandon()
	wait(t, h.done, "Run to return")
	wait(t, h.c.closed, "the consumer to close")
	if cs := h.c.commits(); len(cs) == 0 || cs[len(cs)-1] != 0 {
		t.Fatalf("commits %v, want the handed offset 0 last", cs)
	}
}
