package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/cluster/clustertest"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// fakeCluster is a static cluster for unit tests: fixed schedulers, no
// leaders, a watch that only waits.
type fakeCluster struct{ scheds []whisk.SchedulerInfo }

func (f *fakeCluster) Leader(context.Context, whisk.FQN) (whisk.LeaderInfo, bool, error) {
	return whisk.LeaderInfo{}, false, nil
}
func (f *fakeCluster) Schedulers(context.Context) ([]whisk.SchedulerInfo, error) {
	return append([]whisk.SchedulerInfo(nil), f.scheds...), nil
}
func (f *fakeCluster) WatchLeaders(ctx context.Context, _ func(whisk.FQN, whisk.LeaderInfo, bool)) error {
	<-ctx.Done()
	return nil
}

// fakeStore answers GetActivation from a map.
type fakeStore struct {
	mu   sync.Mutex
	recs map[whisk.ActivationID]whisk.Activation
}

func (s *fakeStore) GetActivation(_ context.Context, ns string, id whisk.ActivationID) (whisk.Activation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.recs[id]; ok && a.Namespace == ns {
		return a, nil
	}
	return whisk.Activation{}, whisk.E("fake", whisk.NotFound, whisk.MsgNotFound, nil)
}

// fakeScheduler counts CreateQueue calls; gate (if set) holds them; fail
// (or down, switchable) makes them fail; elect (if set) is called to make
// the leader real, with the call's number (1 for the first).
type fakeScheduler struct {
	id    string
	calls atomic.Int32
	gate  chan struct{}
	fail  bool
	down  atomic.Bool
	elect func(ctx context.Context, meta whisk.ActionMeta, li whisk.LeaderInfo) error
	// electN, if set, is used instead of elect.
	electN func(ctx context.Context, n int32, meta whisk.ActionMeta, li whisk.LeaderInfo) error
}

func (f *fakeScheduler) Close() error { return nil }

func (f *fakeScheduler) CreateQueue(ctx context.Context, req *rpc.CreateQueueRequest) (*rpc.CreateQueueResponse, error) {
	n := f.calls.Add(1)
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.fail || f.down.Load() {
		return nil, whisk.E("fake", whisk.Unavailable, "down", nil)
	}
	li := whisk.LeaderInfo{SchedulerID: f.id, Addr: f.id + ":1"}
	if f.electN != nil {
		if err := f.electN(ctx, n, req.Action, li); err != nil {
			return nil, err
		}
	} else if f.elect != nil {
		if err := f.elect(ctx, req.Action, li); err != nil {
			return nil, err
		}
	}
	return &rpc.CreateQueueResponse{Leader: li}, nil
}

// dialer maps scheduler addresses to fakes and counts dials.
type dialer struct {
	mu     sync.Mutex
	scheds map[string]*fakeScheduler
	dials  map[string]int
}

func (d *dialer) dial(addr string) (QueueCreator, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dials == nil {
		d.dials = map[string]int{}
	}
	d.dials[addr]++
	s, ok := d.scheds[addr]
	if !ok {
		return nil, fmt.Errorf("no scheduler at %s", addr)
	}
	return s, nil
}

type rig struct {
	c     *Controller
	bus   *memory.Bus
	store *fakeStore
	clock *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newRig builds a controller on the real memory bus. A nil cl gets one
// fake scheduler "s1" that answers at once.
func newRig(t *testing.T, id string, cl Cluster, d *dialer, limits whisk.SystemLimits) *rig {
	t.Helper()
	if cl == nil {
		s1 := &fakeScheduler{id: "s1"}
		cl = &fakeCluster{scheds: []whisk.SchedulerInfo{{ID: "s1", Addr: "s1:1"}}}
		d = &dialer{scheds: map[string]*fakeScheduler{"s1:1": s1}}
	}
	r := &rig{bus: memory.New(nil), store: &fakeStore{recs: map[whisk.ActivationID]whisk.Activation{}},
		clock: &clock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}}
	deps := Deps{Bus: r.bus, Cluster: cl, Activations: r.store, Now: time.Now,
		Components: &fakeComponents{actions: map[string]whisk.Action{}}, Records: r.store}
	if d != nil {
		deps.DialScheduler = d.dial
	}
	c, err := New(Config{ID: id, Limits: limits}, deps)
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	t.Cleanup(func() { _ = c.Close() })
	return r
}

// run starts Run until the test ends.
func (r *rig) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func guest() whisk.Identity {
	return whisk.Identity{Subject: "guest", Namespace: "guest", UUID: "u", Key: "k"}
}

func action(name string, params whisk.Params, anns whisk.Params) whisk.Action {
	return whisk.Action{Namespace: "guest", Name: name, Version: "0.0.1", Rev: 1,
		Exec:       whisk.Exec{Kind: "python:3.11", Code: "def main(a): return a"},
		Parameters: params, Annotations: anns, Limits: whisk.DefaultSystemLimits().Defaults()}
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// queueConsumer reads the action's topic as a queue would.
func queueConsumer(t *testing.T, b bus.Bus, a whisk.Action) bus.Consumer {
	t.Helper()
	ctx := context.Background()
	topic := whisk.ActionTopic(a.FQN())
	if err := b.EnsureTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	c, err := b.Subscribe(ctx, topic, "queue")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func nextMessage(t *testing.T, c bus.Consumer) whisk.ActivationMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	recs, err := c.Poll(ctx, 1)
	if err != nil {
		t.Fatalf("poll action topic: %v", err)
	}
	var m whisk.ActivationMessage
	if err := json.Unmarshal(recs[0].Value, &m); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(ctx, recs[0].Offset); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRateLimitPerNamespacePerMinute(t *testing.T) {
	limits := whisk.DefaultSystemLimits()
	limits.InvocationsPerMinute = 3
	r := newRig(t, "c0", nil, nil, limits)
	r.c.now = r.clock.Now
	ctx := context.Background()
	a := action("hello", nil, nil)

	custom := guest()
	custom.Namespace, custom.Limits.InvocationsPerMinute = "vip", 5
	vipAction := a
	vipAction.Namespace = "vip"

	steps := []struct {
		who     whisk.Identity
		act     whisk.Action
		advance time.Duration
		wantErr string
	}{
		{who: guest(), act: a},
		{who: guest(), act: a},
		{who: guest(), act: a},
		{who: guest(), act: a, wantErr: whisk.MsgTooManyPerMinute(4, 3)},
		{who: guest(), act: a, wantErr: whisk.MsgTooManyPerMinute(5, 3)},
		{who: custom, act: vipAction}, // other namespace, its own limit
		{who: custom, act: vipAction},
		{who: custom, act: vipAction},
		{who: custom, act: vipAction},
		{who: custom, act: vipAction},
		{who: custom, act: vipAction, wantErr: whisk.MsgTooManyPerMinute(6, 5)},
		{who: guest(), act: a, advance: time.Minute}, // the next minute starts afresh
	}
	for i, s := range steps {
		r.clock.Add(s.advance)
		_, err := r.c.Invoke(ctx, Request{Identity: s.who, Action: s.act})
		switch {
		case s.wantErr == "" && err != nil:
			t.Fatalf("step %d: %v", i, err)
		case s.wantErr != "":
			if !whisk.IsKind(err, whisk.Throttled) || whisk.UserMessage(err) != s.wantErr {
				t.Fatalf("step %d: got %v, want throttled %q", i, err, s.wantErr)
			}
		}
	}
}

func TestMergeParams(t *testing.T) {
	final := whisk.Params{{Key: "final", Value: raw("true")}}
	tests := []struct {
		name    string
		params  whisk.Params
		anns    whisk.Params
		body    string
		want    string
		wantErr string
	}{
		{name: "no body", params: whisk.Params{{Key: "a", Value: raw("1")}}, want: `{"a":1}`},
		{name: "empty", want: `{}`},
		{name: "invoke wins", params: whisk.Params{{Key: "a", Value: raw("1")}, {Key: "b", Value: raw(`"x"`)}},
			body: `{"b":"y","c":[1]}`, want: `{"a":1,"b":"y","c":[1]}`},
		{name: "new keys sorted", body: `{"z":1,"m":2}`, want: `{"m":2,"z":1}`},
		{name: "final blocks override", params: whisk.Params{{Key: "a", Value: raw("1")}}, anns: final,
			body: `{"a":2}`, wantErr: whisk.MsgReservedParams},
		{name: "final allows new keys", params: whisk.Params{{Key: "a", Value: raw("1")}}, anns: final,
			body: `{"b":2}`, want: `{"a":1,"b":2}`},
		{name: "final allows undefined params", params: whisk.Params{{Key: "a", Value: raw("null")}}, anns: final,
			body: `{"a":2}`, want: `{"a":2}`},
		{name: "final false", params: whisk.Params{{Key: "a", Value: raw("1")}},
			anns: whisk.Params{{Key: "final", Value: raw("false")}}, body: `{"a":2}`, want: `{"a":2}`},
		{name: "not an object", body: `[1,2]`, wantErr: whisk.MsgMalformed},
		{name: "null body", body: `null`, wantErr: whisk.MsgMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mergeParams(action("x", tc.params, tc.anns), raw(tc.body))
			if tc.wantErr != "" {
				if !whisk.IsKind(err, whisk.Invalid) || len(whisk.UserMessage(err)) < len(tc.wantErr) ||
					whisk.UserMessage(err)[:len(tc.wantErr)] != tc.wantErr {
					t.Fatalf("got %v, want Invalid %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestMessageFields(t *testing.T) {
	limits := whisk.DefaultSystemLimits()
	r := newRig(t, "ctl-7", nil, nil, limits)
	ctx := context.Background()
	withKey := action("withkey", whisk.Params{{Key: "p", Value: raw(`"v"`)}}, nil)
	noKey := action("nokey", nil, whisk.Params{{Key: "provide-api-key", Value: raw("false")}})
	limited := guest()
	limited.Limits.ConcurrentContainers = 7

	tests := []struct {
		name      string
		who       whisk.Identity
		act       whisk.Action
		wantKey   bool
		wantLimit int
	}{
		{"api key when annotation absent", guest(), withKey, true, limits.ConcurrentContainers},
		{"no api key when provide-api-key false", limited, noKey, false, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cons := queueConsumer(t, r.bus, tc.act)
			before := time.Now().UnixMilli()
			res, err := r.c.Invoke(ctx, Request{TransactionID: "tid", Identity: tc.who, Action: tc.act, Params: raw(`{"q":1}`)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Activation != nil || len(res.ActivationID) != 32 {
				t.Fatalf("non-blocking result %+v", res)
			}
			m := nextMessage(t, cons)
			if m.ActivationID != res.ActivationID || m.ControllerID != "ctl-7" || m.TransactionID != "tid" ||
				m.Subject != "guest" || m.Blocking || m.Published < before || m.Action.Name != tc.act.Name ||
				m.Action.Rev != 1 || m.NamespaceLimit != tc.wantLimit {
				t.Fatalf("message %+v", m)
			}
			if (m.APIKey != "") != tc.wantKey || (tc.wantKey && m.APIKey != "u:k") {
				t.Fatalf("api key %q, want present=%v", m.APIKey, tc.wantKey)
			}
			var p map[string]any
			if err := json.Unmarshal(m.Params, &p); err != nil || p["q"] != float64(1) {
				t.Fatalf("params %s", m.Params)
			}
		})
	}
}

func TestNoScheduler(t *testing.T) {
	r := newRig(t, "c0", &fakeCluster{}, &dialer{}, whisk.DefaultSystemLimits())
	_, err := r.c.Invoke(context.Background(), Request{Identity: guest(), Action: action("a", nil, nil)})
	if !whisk.IsKind(err, whisk.Unavailable) || whisk.UserMessage(err) != whisk.MsgNoSchedulers {
		t.Fatalf("got %v, want Unavailable %q", err, whisk.MsgNoSchedulers)
	}
}

func TestCreateQueueFailsOver(t *testing.T) {
	bad := &fakeScheduler{id: "a", fail: true}
	good := &fakeScheduler{id: "b"}
	cl := &fakeCluster{scheds: []whisk.SchedulerInfo{
		{ID: "b", Addr: "b:1", Queues: 3}, {ID: "a", Addr: "a:1", Queues: 1}, // a is the least loaded
	}}
	d := &dialer{scheds: map[string]*fakeScheduler{"a:1": bad, "b:1": good}}
	r := newRig(t, "c0", cl, d, whisk.DefaultSystemLimits())
	act := action("fo", nil, nil)
	if _, err := r.c.Invoke(context.Background(), Request{Identity: guest(), Action: act}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "leader cached from b", func() bool {
		r.c.mu.Lock()
		defer r.c.mu.Unlock()
		return r.c.leaders[act.FQN()].SchedulerID == "b"
	})
	if bad.calls.Load() != 1 || good.calls.Load() != 1 {
		t.Fatalf("calls a=%d b=%d, want 1 and 1", bad.calls.Load(), good.calls.Load())
	}
	// The leader is cached: no more creations.
	if _, err := r.c.Invoke(context.Background(), Request{Identity: guest(), Action: act}); err != nil {
		t.Fatal(err)
	}
	if good.calls.Load() != 1 {
		t.Fatalf("CreateQueue called again with a cached leader")
	}
}

func TestBlockingTimeoutFallsBackToStore(t *testing.T) {
	r := newRig(t, "c0", nil, nil, whisk.DefaultSystemLimits())
	r.run(t)
	ctx := context.Background()

	// Nobody completes and the store has nothing: the id only.
	start := time.Now()
	res, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: action("slow", nil, nil), Blocking: true, Wait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Activation != nil || res.ActivationID == "" {
		t.Fatalf("result %+v, want id only", res)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 5*time.Second {
		t.Fatalf("waited %v", d)
	}

	// The record is in the store (the completion was lost): it is returned.
	cons := queueConsumer(t, r.bus, action("lost", nil, nil))
	go func() {
		m := nextMessage(t, cons)
		r.store.mu.Lock()
		r.store.recs[m.ActivationID] = whisk.Activation{Namespace: "guest", Name: "lost", ActivationID: m.ActivationID,
			Response: whisk.NewResponse(whisk.StatusSuccess, raw(`{"ok":true}`))}
		r.store.mu.Unlock()
	}()
	res, err = r.c.Invoke(ctx, Request{Identity: guest(), Action: action("lost", nil, nil), Blocking: true, Wait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Activation == nil || string(res.Activation.Response.Result) != `{"ok":true}` {
		t.Fatalf("result %+v, want the stored record", res)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWithEtcd runs the controller against a real embedded etcd (leader
// watch, scheduler registrations) and the real memory bus.
func TestWithEtcd(t *testing.T) {
	etcd := clustertest.StartTestCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client, err := cluster.Dial(ctx, etcd.Endpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	sess, err := cluster.NewSession(ctx, client, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sess.Close(context.Background()) })
	if err := sess.RegisterScheduler(ctx, whisk.SchedulerInfo{ID: "s1", Addr: "s1:1"}); err != nil {
		t.Fatal(err)
	}
	elect := func(ctx context.Context, meta whisk.ActionMeta, li whisk.LeaderInfo) error {
		_, _, err := sess.ElectLeader(ctx, meta.FQN(), li)
		return err
	}

	t.Run("CreateQueueOnceForConcurrentFirstInvocations", func(t *testing.T) {
		s1 := &fakeScheduler{id: "s1", gate: make(chan struct{}), elect: elect}
		d := &dialer{scheds: map[string]*fakeScheduler{"s1:1": s1}}
		r := newRig(t, "c1", client, d, whisk.DefaultSystemLimits())
		r.run(t)
		act := action("burst", nil, nil)
		cons := queueConsumer(t, r.bus, act)

		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: act})
				errs <- err
			}()
		}
		wg.Wait() // every invocation published while CreateQueue is still held
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		for range 20 {
			nextMessage(t, cons)
		}
		close(s1.gate)
		waitFor(t, "leader in cache", func() bool {
			r.c.mu.Lock()
			defer r.c.mu.Unlock()
			_, ok := r.c.leaders[act.FQN()]
			return ok && r.c.creating[act.FQN()] == nil
		})
		if _, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: act}); err != nil {
			t.Fatal(err)
		}
		if n := s1.calls.Load(); n != 1 {
			t.Fatalf("CreateQueue called %d times, want 1", n)
		}
		if d.dials["s1:1"] != 1 {
			t.Fatalf("dialled %d times, want 1", d.dials["s1:1"])
		}
	})

	t.Run("BlockingCompletion", func(t *testing.T) {
		s1 := &fakeScheduler{id: "s1", elect: elect}
		d := &dialer{scheds: map[string]*fakeScheduler{"s1:1": s1}}
		r := newRig(t, "c2", client, d, whisk.DefaultSystemLimits())
		r.run(t)
		act := action("block", whisk.Params{{Key: "greeting", Value: raw(`"hi"`)}}, nil)
		cons := queueConsumer(t, r.bus, act)

		// A pretend invoker: take the message, answer on the controller's topic.
		go func() {
			m := nextMessage(t, cons)
			rec := whisk.Activation{Namespace: "guest", Name: act.Name, ActivationID: m.ActivationID,
				Response: whisk.NewResponse(whisk.StatusSuccess, m.Params)}
			b, _ := json.Marshal(whisk.Completion{Activation: rec, InvokerID: "i0"})
			if err := r.bus.Publish(ctx, whisk.CompletionTopic(m.ControllerID), b); err != nil {
				t.Error(err)
			}
		}()
		res, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: act, Params: raw(`{"name":"Ada"}`), Blocking: true, Wait: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if res.Activation == nil || res.Activation.ActivationID != res.ActivationID {
			t.Fatalf("result %+v, want the completed record", res)
		}
		if got := string(res.Activation.Response.Result); got != `{"greeting":"hi","name":"Ada"}` {
			t.Fatalf("result %s", got)
		}
		r.c.mu.Lock()
		defer r.c.mu.Unlock()
		if len(r.c.waiters) != 0 || len(r.c.flights) != 0 || len(r.c.byAction) != 0 {
			t.Fatalf("leftovers: waiters %d flights %d actions %d", len(r.c.waiters), len(r.c.flights), len(r.c.byAction))
		}
	})

	t.Run("LeaderVanishedWithActivationsInFlight", func(t *testing.T) {
		s1 := &fakeScheduler{id: "s1", elect: elect}
		d := &dialer{scheds: map[string]*fakeScheduler{"s1:1": s1}}
		r := newRig(t, "c3", client, d, whisk.DefaultSystemLimits())
		r.run(t)
		act := action("orphan", nil, nil)
		if _, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: act}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "first queue", func() bool { return s1.calls.Load() == 1 })
		waitFor(t, "leader watched", func() bool {
			r.c.mu.Lock()
			defer r.c.mu.Unlock()
			_, ok := r.c.leaders[act.FQN()]
			return ok && r.c.creating[act.FQN()] == nil
		})
		if err := sess.ResignLeader(ctx, act.FQN()); err != nil {
			t.Fatal(err)
		}
		// The activation never completed: the controller asks for a new queue.
		waitFor(t, "queue recreated", func() bool { return s1.calls.Load() == 2 })
	})
}

// grpcFake serves CreateQueue over real gRPC.
type grpcFake struct {
	calls atomic.Int32
}

func (g *grpcFake) Fetch(context.Context, *rpc.FetchRequest) (*rpc.FetchResponse, error) {
	return &rpc.FetchResponse{Status: rpc.FetchEmpty}, nil
}

func (g *grpcFake) CreateQueue(_ context.Context, req *rpc.CreateQueueRequest) (*rpc.CreateQueueResponse, error) {
	g.calls.Add(1)
	if req.Action.Name == "" {
		return nil, errors.New("no action")
	}
	return &rpc.CreateQueueResponse{Leader: whisk.LeaderInfo{SchedulerID: "g", Addr: "g:1"}}, nil
}

func TestDialGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(rpc.ServerOptions()...)
	fake := &grpcFake{}
	rpc.Register(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	cl := &fakeCluster{scheds: []whisk.SchedulerInfo{{ID: "g", Addr: lis.Addr().String()}}}
	r := newRig(t, "c0", cl, nil, whisk.DefaultSystemLimits()) // DialScheduler nil: DialGRPC
	act := action("viagrpc", nil, nil)
	if _, err := r.c.Invoke(context.Background(), Request{Identity: guest(), Action: act}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "CreateQueue over gRPC", func() bool {
		r.c.mu.Lock()
		defer r.c.mu.Unlock()
		return r.c.leaders[act.FQN()].SchedulerID == "g"
	})
	if fake.calls.Load() != 1 {
		t.Fatalf("calls %d", fake.calls.Load())
	}
	if err := r.c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRateThrottleClears shows the per-minute throttle's reasons (limit,
// Retry-After, OpenWhisk's message) and that it clears the moment the
// window moves, with an injected clock.
func TestRateThrottleClears(t *testing.T) {
	limits := whisk.DefaultSystemLimits()
	limits.InvocationsPerMinute = 3
	r := newRig(t, "c0", nil, nil, limits)
	r.c.now = r.clock.Now
	ctx := context.Background()
	a := action("hello", nil, nil)
	invoke := func() error {
		_, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: a})
		return err
	}
	wantThrottle := func(step string, err error, count int, retry time.Duration, retrySecs int) {
		t.Helper()
		if !whisk.IsKind(err, whisk.Throttled) || whisk.UserMessage(err) != whisk.MsgTooManyPerMinute(count, 3) {
			t.Fatalf("%s: got %v, want throttled %q", step, err, whisk.MsgTooManyPerMinute(count, 3))
		}
		th := whisk.ThrottleOf(err)
		if th == nil || th.Limit != whisk.LimitInvocationsPerMinute || th.Count != count || th.Allowed != 3 ||
			th.RetryAfter != retry || th.RetryAfterSeconds() != retrySecs {
			t.Fatalf("%s: throttle %+v, want %s count %d retry %v (%d s)", step, th, whisk.LimitInvocationsPerMinute, count, retry, retrySecs)
		}
	}

	r.clock.Add(40 * time.Second) // 12:00:40
	for i := range 3 {
		if err := invoke(); err != nil {
			t.Fatalf("invocation %d under the limit: %v", i, err)
		}
	}
	wantThrottle("at the limit", invoke(), 4, 20*time.Second, 20)
	r.clock.Add(19*time.Second + 500*time.Millisecond) // 12:00:59.5
	wantThrottle("half a second before the window moves", invoke(), 5, 500*time.Millisecond, 1)
	r.clock.Add(500 * time.Millisecond) // 12:01:00: the window moved
	for i := range 3 {
		if err := invoke(); err != nil {
			t.Fatalf("invocation %d right after the window moved: %v", i, err)
		}
	}
	wantThrottle("at the limit again", invoke(), 4, time.Minute, 60)
}

// TestConcurrentThrottleRecord: a blocking invocation whose record the queue
// failed at the namespace's concurrent-containers limit (the record carries
// the throttle marker) answers a Throttled
// error naming that limit; other whisk errors stay records.
func TestConcurrentThrottleRecord(t *testing.T) {
	id := whisk.NewActivationID()
	rec := func(code int, msg string) whisk.Activation {
		return whisk.Activation{Namespace: "guest", Name: "a", ActivationID: id, Response: whisk.ErrorResponse(code, msg)}
	}
	marked := func(a whisk.Activation, count, allowed int) whisk.Activation {
		a.MarkThrottled(&whisk.Throttle{Limit: whisk.LimitConcurrentContainers, Count: count, Allowed: allowed, RetryAfter: time.Second})
		return a
	}
	res, err := blockingResult(id, marked(rec(whisk.StatusWhiskError, whisk.MsgTooManyConcurrent(7, 7)), 7, 7))
	th := whisk.ThrottleOf(err)
	if !whisk.IsKind(err, whisk.Throttled) || whisk.UserMessage(err) != whisk.MsgTooManyConcurrent(7, 7) || th == nil ||
		th.Limit != whisk.LimitConcurrentContainers || th.RetryAfterSeconds() != 1 || res.ActivationID != id || res.Activation != nil {
		t.Fatalf("got %+v, %v (throttle %+v)", res, err, th)
	}
	for _, a := range []whisk.Activation{
		rec(whisk.StatusWhiskError, whisk.MsgNotInitiated(1000)),
		rec(whisk.StatusApplicationError, whisk.MsgTooManyConcurrent(7, 7)), // the action's own error
		rec(whisk.StatusWhiskError, whisk.MsgTooManyConcurrent(7, 7)),       // the text alone is no marker
		marked(rec(whisk.StatusApplicationError, "x"), 7, 7),                // a marker on a non-whisk error
		{ActivationID: id, Response: whisk.NewResponse(whisk.StatusWhiskError, raw(`"not an object"`))},
	} {
		res, err := blockingResult(id, a)
		if err != nil || res.Activation == nil {
			t.Fatalf("record %+v: got %+v, %v, want the record", a.Response, res, err)
		}
	}

	// Through the blocking path: the record comes from the store fallback.
	r := newRig(t, "c0", nil, nil, whisk.DefaultSystemLimits())
	r.run(t)
	act := action("crowded", nil, nil)
	cons := queueConsumer(t, r.bus, act)
	go func() {
		m := nextMessage(t, cons)
		r.store.mu.Lock()
		r.store.recs[m.ActivationID] = marked(whisk.Activation{Namespace: "guest", Name: act.Name, ActivationID: m.ActivationID,
			Response: whisk.ErrorResponse(whisk.StatusWhiskError, whisk.MsgTooManyConcurrent(3, 2))}, 3, 2)
		r.store.mu.Unlock()
	}()
	_, err = r.c.Invoke(context.Background(), Request{Identity: guest(), Action: act, Blocking: true, Wait: 300 * time.Millisecond})
	if th := whisk.ThrottleOf(err); !whisk.IsKind(err, whisk.Throttled) || th == nil || th.Limit != whisk.LimitConcurrentContainers ||
		whisk.UserMessage(err) != whisk.MsgTooManyConcurrent(3, 2) {
		t.Fatalf("got %v, want the concurrent throttle", err)
	}
}
