package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/cluster/clustertest"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/eddy-faas/eddy/internal/testenv"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// These tests run schedulers on a real embedded etcd and the memory bus,
// and talk to them over gRPC.

func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// records is an in-test Activations store.
type records struct {
	mu sync.Mutex
	m  map[whisk.ActivationID]whisk.Activation
}

func (r *records) PutActivation(_ context.Context, a whisk.Activation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[a.ActivationID] = a
	return nil
}

func (r *records) GetActivation(_ context.Context, _ string, id whisk.ActivationID) (whisk.Activation, error) {
	if a, ok := r.get(id); ok {
		return a, nil
	}
	return whisk.Activation{}, whisk.E("get activation", whisk.NotFound, "", nil)
}

func (r *records) get(id whisk.ActivationID) (whisk.Activation, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.m[id]
	return a, ok
}

type env struct {
	t      *testing.T
	ctx    context.Context
	client *cluster.Client
	bus    *memory.Bus
	store  *records
	// wrapBus, if set, wraps the bus the schedulers get (fault injection).
	wrapBus func(scheduler.Bus) scheduler.Bus
}

func (e *env) schedulerBus() scheduler.Bus {
	if e.wrapBus != nil {
		return e.wrapBus(e.bus)
	}
	return e.bus
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c := clustertest.StartTestCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cli, err := cluster.Dial(ctx, c.Endpoints(), testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	b := memory.New(testLog())
	t.Cleanup(func() { _ = b.Close() })
	return &env{t: t, ctx: ctx, client: cli, bus: b, store: &records{m: map[whisk.ActivationID]whisk.Activation{}}}
}

func (e *env) session() *cluster.Session {
	e.t.Helper()
	s, err := cluster.NewSession(e.ctx, e.client, 5*time.Second, testLog())
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		<-done
		_ = s.Close(context.Background())
	})
	return s
}

type sched struct {
	s      *scheduler.Scheduler
	sess   *cluster.Session
	id     string
	addr   string
	rpc    *rpc.Client
	cancel context.CancelFunc
	done   chan error
}

func (e *env) scheduler(id string, cfg scheduler.Config) *sched {
	e.t.Helper()
	return e.schedulerWith(id, cfg, nil)
}

// schedulerWith starts a scheduler whose session wrap may wrap (to make
// etcd calls fail).
func (e *env) schedulerWith(id string, cfg scheduler.Config, wrap func(*cluster.Session) scheduler.Session) *sched {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.ID, cfg.Addr = id, ln.Addr().String()
	if cfg.Tick == 0 {
		cfg.Tick = 20 * time.Millisecond
	}
	sess := e.session()
	var ss scheduler.Session = sess
	if wrap != nil {
		ss = wrap(sess)
	}
	s, err := scheduler.New(cfg, scheduler.Deps{
		Log: testLog().With("sid", id), Bus: e.schedulerBus(), Session: ss, Client: e.client,
		Activations: e.store, Now: time.Now, Listener: ln,
		Credentials: insecure.NewCredentials(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	h := &sched{s: s, sess: sess, id: id, addr: cfg.Addr, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- s.Run(ctx) }()
	cc, err := grpc.NewClient(cfg.Addr, append(rpc.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		e.t.Fatal(err)
	}
	h.rpc = rpc.NewClient(cc)
	e.t.Cleanup(func() {
		h.stop(e.t)
		_ = cc.Close()
	})
	e.eventually("scheduler "+id+" registered", func() bool {
		ss, err := e.client.Schedulers(e.ctx)
		if err != nil {
			return false
		}
		for _, si := range ss {
			if si.ID == id {
				return true
			}
		}
		return false
	})
	return h
}

func (h *sched) stop(t *testing.T) {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("scheduler %s: Run: %v", h.id, err)
		}
		h.done <- nil // stop is idempotent
	case <-time.After(10 * time.Second):
		t.Errorf("scheduler %s did not stop", h.id)
	}
}

func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	testenv.Eventually(e.t, 10*time.Second, what, cond)
}

var hello = whisk.ActionMeta{Namespace: "guest", Name: "hello", Rev: 1, Kind: "python:3",
	Limits: whisk.Limits{Timeout: 60000, Memory: 256, Concurrency: 1}}

// publish sends an activation of hello to its topic, as a controller does.
func (e *env) publish(id string, controller string) whisk.ActivationID {
	e.t.Helper()
	topic := whisk.ActionTopic(hello.FQN())
	if err := e.bus.EnsureTopic(e.ctx, topic); err != nil {
		e.t.Fatal(err)
	}
	aid := whisk.ActivationID(strings.Repeat("0", 32-len(id)) + id)
	b, _ := json.Marshal(whisk.ActivationMessage{
		ActivationID: aid, Action: hello, Subject: "guest", Params: json.RawMessage(`{}`),
		ControllerID: controller, Published: time.Now().UnixMilli(),
	})
	if err := e.bus.Publish(e.ctx, topic, b); err != nil {
		e.t.Fatal(err)
	}
	return aid
}

// subscribe opens a consumer of topic (created if missing).
func (e *env) subscribe(topic, group string) bus.Consumer {
	e.t.Helper()
	if err := e.bus.EnsureTopic(e.ctx, topic); err != nil {
		e.t.Fatal(err)
	}
	c, err := e.bus.Subscribe(e.ctx, topic, group)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

func next[T any](t *testing.T, c bus.Consumer) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := c.Poll(ctx, 1)
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	var v T
	if err := json.Unmarshal(recs[0].Value, &v); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(ctx, recs[0].Offset); err != nil {
		t.Fatal(err)
	}
	return v
}

func (h *sched) fetch(t *testing.T, rev int64) *rpc.FetchResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := h.rpc.Fetch(ctx, &rpc.FetchRequest{Namespace: hello.Namespace, Action: hello.Name, Rev: rev,
		ContainerID: "c1", InvokerID: "i0", Alive: true})
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return r
}

func TestCreateQueueElection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s1 := e.scheduler("s1", scheduler.Config{})
	s2 := e.scheduler("s2", scheduler.Config{})

	answers := make(chan whisk.LeaderInfo, 2)
	errs := make(chan error, 2)
	for _, s := range []*sched{s1, s2} {
		go func() {
			r, err := s.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello})
			if err != nil {
				errs <- err
				return
			}
			answers <- r.Leader
		}()
	}
	var got []whisk.LeaderInfo
	for range 2 {
		select {
		case li := <-answers:
			got = append(got, li)
		case err := <-errs:
			t.Fatal(err)
		}
	}
	if got[0] != got[1] {
		t.Fatalf("the schedulers disagree on the leader: %+v", got)
	}
	li, ok, err := e.client.Leader(e.ctx, hello.FQN())
	if err != nil || !ok || li != got[0] {
		t.Fatalf("leader key %+v %v %v, answers %+v", li, ok, err, got[0])
	}
	leader, other := s1, s2
	if li.SchedulerID == s2.id {
		leader, other = s2, s1
	}
	if li.Addr != leader.addr {
		t.Fatalf("leader address %s, want %s", li.Addr, leader.addr)
	}
	// Re-entrant on the leader; the loser answers with the leader again.
	for _, s := range []*sched{leader, other} {
		r, err := s.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello})
		if err != nil || r.Leader != li {
			t.Fatalf("CreateQueue on %s again: %+v %v", s.id, r, err)
		}
	}
	if r := other.fetch(t, 1); r.Status != rpc.FetchNoQueue {
		t.Fatalf("fetch on the loser: %+v", r)
	}
	e.eventually("the leader's queue count", func() bool {
		ss, _ := e.client.Schedulers(e.ctx)
		for _, si := range ss {
			if si.ID == leader.id {
				return si.Queues == 1
			}
		}
		return false
	})

	// The leader stops: its queue resigns the key.
	leader.stop(t)
	li, ok, err = e.client.Leader(e.ctx, hello.FQN())
	if err != nil || ok {
		t.Fatalf("leader key after the leader stopped: %+v %v %v", li, ok, err)
	}
}

func TestCreationAndFetch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s1 := e.scheduler("s1", scheduler.Config{Park: 300 * time.Millisecond})
	inv := e.session()
	if err := inv.RegisterInvoker(e.ctx, whisk.InvokerInfo{ID: "i0", Status: whisk.InvokerUp, UserMemory: 1024, FreeMemory: 1024}); err != nil {
		t.Fatal(err)
	}
	creations := e.subscribe(whisk.InvokerTopic("i0"), "invoker")

	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	a1 := e.publish("1", "c0")

	// The first activation asks for a container on the invoker's topic,
	// with the creation key in etcd until the ack.
	cr := next[whisk.ContainerCreation](t, creations)
	if cr.SchedulerAddr != s1.addr || cr.SchedulerID != "s1" || cr.Action.Name != "hello" || cr.CreationID == "" {
		t.Fatalf("creation message %+v", cr)
	}
	n, err := e.client.CountCreations(e.ctx, hello.FQN(), 1)
	if err != nil || n != 1 {
		t.Fatalf("creation keys %d %v, want 1", n, err)
	}
	ci := whisk.ContainerInfo{Namespace: "guest", Action: "hello", Rev: 1, InvokerID: "i0", ContainerID: "c1", MemoryMB: 256}
	if err := inv.RegisterContainer(e.ctx, ci); err != nil {
		t.Fatal(err)
	}
	ack, _ := json.Marshal(whisk.CreationAck{CreationID: cr.CreationID, Action: hello, InvokerID: "i0", ContainerID: "c1"})
	if err := e.bus.Publish(e.ctx, whisk.CreationAckTopic("s1"), ack); err != nil {
		t.Fatal(err)
	}
	e.eventually("the creation key deleted after the ack", func() bool {
		n, err := e.client.CountCreations(e.ctx, hello.FQN(), 1)
		return err == nil && n == 0
	})

	// The container fetches the activation.
	r := s1.fetch(t, 1)
	if r.Status != rpc.FetchOK || r.Activation.ActivationID != a1 {
		t.Fatalf("fetch: %+v", r)
	}
	// An empty queue parks the fetch and answers empty after the park.
	start := time.Now()
	if r := s1.fetch(t, 1); r.Status != rpc.FetchEmpty {
		t.Fatalf("fetch on an empty queue: %+v", r)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("empty answer after %v, want about the park time", d)
	}
	// A parked fetch gets a new activation as soon as it arrives.
	got := make(chan *rpc.FetchResponse, 1)
	go func() { got <- s1.fetch(t, 1) }()
	time.Sleep(50 * time.Millisecond) // let it park (not needed for correctness)
	a2 := e.publish("2", "c0")
	select {
	case r := <-got:
		if r.Status != rpc.FetchOK || r.Activation.ActivationID != a2 {
			t.Fatalf("parked fetch: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("parked fetch not answered")
	}
	// An older revision is told it is obsolete once the queue saw a newer one.
	newer := hello
	newer.Rev = 2
	b, _ := json.Marshal(whisk.ActivationMessage{ActivationID: "00000000000000000000000000000003", Action: newer, ControllerID: "c0"})
	if err := e.bus.Publish(e.ctx, whisk.ActionTopic(hello.FQN()), b); err != nil {
		t.Fatal(err)
	}
	e.eventually("mismatch for the old revision", func() bool { return s1.fetch(t, 1).Status == rpc.FetchMismatch })
}

func TestCreationFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s1 := e.scheduler("s1", scheduler.Config{})
	inv := e.session()
	for _, id := range []string{"i0", "i1"} {
		if err := inv.RegisterInvoker(e.ctx, whisk.InvokerInfo{ID: id, Status: whisk.InvokerUp, UserMemory: 1024, FreeMemory: 1024}); err != nil {
			t.Fatal(err)
		}
	}
	c0 := e.subscribe(whisk.InvokerTopic("i0"), "invoker")
	c1 := e.subscribe(whisk.InvokerTopic("i1"), "invoker")
	completions := e.subscribe(whisk.CompletionTopic("c0"), "controller")
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	aid := e.publish("1", "c0")

	// The first invoker (ties go to the lower id) fails retryably; the
	// retry goes to the other invoker, which fails for the developer.
	first := next[whisk.ContainerCreation](t, c0)
	ack := func(iid string, a whisk.CreationAck) {
		a.CreationID, a.InvokerID, a.Action = first.CreationID, iid, hello
		b, _ := json.Marshal(a)
		if err := e.bus.Publish(e.ctx, whisk.CreationAckTopic("s1"), b); err != nil {
			t.Fatal(err)
		}
	}
	ack("i0", whisk.CreationAck{Error: "no memory after all", Retryable: true})
	retry := next[whisk.ContainerCreation](t, c1)
	if retry.CreationID != first.CreationID || retry.Retry != 1 {
		t.Fatalf("retry %+v of %+v", retry, first)
	}
	ack("i1", whisk.CreationAck{Error: "image not found: nope", Developer: true})

	done := next[whisk.Completion](t, completions)
	if done.Activation.ActivationID != aid || done.Activation.StatusCode != whisk.StatusDeveloperError ||
		!strings.Contains(string(done.Activation.Response.Result), "image not found") {
		t.Fatalf("completion %+v %s", done.Activation, done.Activation.Response.Result)
	}
	if _, ok := e.store.get(aid); !ok {
		t.Fatal("developer error record not stored")
	}
	e.eventually("no creation keys left", func() bool {
		n, err := e.client.CountCreations(e.ctx, hello.FQN(), 1)
		return err == nil && n == 0
	})
}

func TestRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// No invoker at all: the activation waits, then fails with the
	// retention error, stored and completed.
	s1 := e.scheduler("s1", scheduler.Config{Retention: 500 * time.Millisecond})
	completions := e.subscribe(whisk.CompletionTopic("c0"), "controller")
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	aid := e.publish("1", "c0")
	done := next[whisk.Completion](t, completions)
	a := done.Activation
	if a.ActivationID != aid || a.StatusCode != whisk.StatusWhiskError || a.Response.Status != "whisk internal error" {
		t.Fatalf("completion %+v", a)
	}
	var res struct{ Error string }
	if err := json.Unmarshal(a.Response.Result, &res); err != nil || !strings.HasPrefix(res.Error, "Activation processing is not initiated for ") {
		t.Fatalf("result %s", a.Response.Result)
	}
	if rec, ok := e.store.get(aid); !ok || rec.StatusCode != whisk.StatusWhiskError {
		t.Fatalf("record %+v %v", rec, ok)
	}
}

func TestIdleQueueRemoved(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s1 := e.scheduler("s1", scheduler.Config{Park: 100 * time.Millisecond, IdleQueueTimeout: 300 * time.Millisecond})
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := e.client.Leader(e.ctx, hello.FQN()); err != nil || !ok {
		t.Fatalf("no leader key after CreateQueue: %v", err)
	}
	e.eventually("the idle queue's leader key to go", func() bool {
		_, ok, err := e.client.Leader(e.ctx, hello.FQN())
		return err == nil && !ok
	})
	e.eventually("the fetch to find no queue", func() bool { return s1.fetch(t, 1).Status == rpc.FetchNoQueue })
	e.eventually("the queue count back to 0", func() bool {
		ss, _ := e.client.Schedulers(e.ctx)
		return len(ss) == 1 && ss[0].Queues == 0
	})
	// The action topic's group committed nothing it did not hand out: a
	// new queue gets an activation published after the removal.
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	aid := e.publish("9", "c0")
	r := s1.fetch(t, 1)
	if r.Status != rpc.FetchOK || r.Activation.ActivationID != aid {
		t.Fatalf("fetch on the new queue: %+v", r)
	}
}

func TestNotRunning(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := scheduler.New(scheduler.Config{}, scheduler.Deps{}); err == nil {
		t.Fatal("New accepted an empty config")
	}
	s, err := scheduler.New(scheduler.Config{ID: "s", Addr: ln.Addr().String()}, scheduler.Deps{
		Bus: memory.New(nil), Session: nopSession{}, Client: nopClient{}, Activations: &records{}, Listener: ln,
		Credentials: insecure.NewCredentials(),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateQueue(context.Background(), &rpc.CreateQueueRequest{Action: hello})
	if !whisk.IsKind(err, whisk.Unavailable) {
		t.Fatalf("CreateQueue before Run: %v", err)
	}
	r, err := s.Fetch(context.Background(), &rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: 1, Alive: true})
	if err != nil || r.Status != rpc.FetchNoQueue {
		t.Fatalf("Fetch before Run: %+v %v", r, err)
	}
}

type nopSession struct{}

func (nopSession) RegisterScheduler(context.Context, whisk.SchedulerInfo) error { return nil }
func (nopSession) ElectLeader(context.Context, whisk.FQN, whisk.LeaderInfo) (bool, whisk.LeaderInfo, error) {
	return false, whisk.LeaderInfo{}, errors.New("nop")
}
func (nopSession) ResignLeader(context.Context, whisk.FQN) error { return nil }
func (nopSession) RetireQueue(context.Context, whisk.FQN) error  { return nil }
func (nopSession) RegisterFollower(context.Context, whisk.FQN, whisk.LeaderInfo) error {
	return nil
}
func (nopSession) DeregisterFollower(context.Context, whisk.FQN, string) error { return nil }
func (nopSession) PutCreation(context.Context, whisk.CreationInfo, int64) (bool, error) {
	return true, nil
}
func (nopSession) DeleteCreation(context.Context, whisk.CreationInfo) error { return nil }
func (nopSession) OnRegrant(func(context.Context))                          {}

type nopClient struct{}

func (nopClient) Leader(context.Context, whisk.FQN) (whisk.LeaderInfo, bool, error) {
	return whisk.LeaderInfo{}, false, nil
}
func (nopClient) Invokers(context.Context) ([]whisk.InvokerInfo, error)          { return nil, nil }
func (nopClient) CountContainers(context.Context, whisk.FQN, int64) (int, error) { return 0, nil }
func (nopClient) CountNamespace(context.Context, string) (containers, creations int, err error) {
	return 0, 0, nil
}
func (nopClient) Schedulers(context.Context) ([]whisk.SchedulerInfo, error) { return nil, nil }
func (nopClient) Followers(context.Context, whisk.FQN) ([]whisk.LeaderInfo, error) {
	return nil, nil
}
func (nopClient) LeadersOf(context.Context, string) ([]whisk.FQN, error) { return nil, nil }
func (nopClient) WatchLeader(ctx context.Context, _ whisk.FQN, _ func(whisk.LeaderInfo, bool, bool)) error {
	<-ctx.Done()
	return nil
}
func (nopClient) CountUsed(context.Context, whisk.FQN, int64) (int, int, int64, error) {
	return 0, 0, 0, nil
}
func (nopClient) NamespaceShare(context.Context, string) (map[string]int, map[string]bool, error) {
	return map[string]int{}, map[string]bool{}, nil
}
func (nopClient) HasDemand(context.Context, string) (bool, error) { return false, nil }
func (nopClient) WatchContainerDeletes(ctx context.Context, _ func(whisk.ContainerInfo)) error {
	<-ctx.Done()
	return nil
}
func (nopSession) PutDemand(context.Context, whisk.FQN, string) error { return nil }
func (nopSession) DeleteDemand(context.Context, whisk.FQN) error      { return nil }

var (
	_ scheduler.Session = (*cluster.Session)(nil)
	_ scheduler.Client  = (*cluster.Client)(nil)
	_ scheduler.Bus     = (*memory.Bus)(nil)
)

// flakySession is a real session whose resigns, creation puts and
// creation deletes fail as many times as the test says.
type flakySession struct {
	*cluster.Session
	failResigns, failPuts, failDeletes atomic.Int32
	mu                                 sync.Mutex
	deleted                            []string // creation ids DeleteCreation was called for
}

func (f *flakySession) ResignLeader(ctx context.Context, fqn whisk.FQN) error {
	if f.failResigns.Add(-1) >= 0 {
		return errors.New("etcd unreachable")
	}
	return f.Session.ResignLeader(ctx, fqn)
}

// RetireQueue (an idle queue's resign) fails like ResignLeader.
func (f *flakySession) RetireQueue(ctx context.Context, fqn whisk.FQN) error {
	if f.failResigns.Add(-1) >= 0 {
		return errors.New("etcd unreachable")
	}
	return f.Session.RetireQueue(ctx, fqn)
}

func (f *flakySession) PutCreation(ctx context.Context, info whisk.CreationInfo, countedAt int64) (bool, error) {
	if f.failPuts.Add(-1) >= 0 {
		// As the real one's plain put when etcd fails: the key is
		// remembered anyway (the worst case for the caller's clean-up).
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, _ = f.Session.PutCreation(cctx, info, 0)
		return false, errors.New("etcd unreachable")
	}
	return f.Session.PutCreation(ctx, info, countedAt)
}

func (f *flakySession) DeleteCreation(ctx context.Context, info whisk.CreationInfo) error {
	f.mu.Lock()
	f.deleted = append(f.deleted, info.CreationID)
	f.mu.Unlock()
	if f.failDeletes.Add(-1) >= 0 {
		return errors.New("etcd unreachable")
	}
	return f.Session.DeleteCreation(ctx, info)
}

func (f *flakySession) deletes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.deleted...)
}

// A resign that fails is retried: an idle queue never leaves its leader key
// pointing at a queue that does not exist.
func TestResignRetriedUntilDone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var fs *flakySession
	s1 := e.schedulerWith("s1", scheduler.Config{Park: 100 * time.Millisecond, IdleQueueTimeout: 200 * time.Millisecond},
		func(s *cluster.Session) scheduler.Session { fs = &flakySession{Session: s}; return fs })
	fs.failResigns.Store(3)
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	e.eventually("the idle queue's leader key to go despite failed resigns", func() bool {
		_, ok, err := e.client.Leader(e.ctx, hello.FQN())
		return err == nil && !ok
	})
	if n := fs.failResigns.Load(); n >= 0 {
		t.Fatalf("resign tried %d times, want 4", 3-n)
	}
	// The manager's entry left only after the key: a new queue serves.
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	aid := e.publish("1", "c0")
	if r := s1.fetch(t, 1); r.Status != rpc.FetchOK || r.Activation.ActivationID != aid {
		t.Fatalf("fetch on the new queue: %+v", r)
	}
}

// The leader key is this scheduler's but no local queue exists (it ended
// without its key): a container's fetch re-creates the queue, which takes
// the action's metadata from its first message.
func TestFetchRecreatesQueueForOwnKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s1 := e.scheduler("s1", scheduler.Config{Park: 200 * time.Millisecond})
	won, _, err := s1.sess.ElectLeader(e.ctx, hello.FQN(), whisk.LeaderInfo{SchedulerID: "s1", Addr: s1.addr})
	if err != nil || !won {
		t.Fatalf("elect: %v %v", won, err)
	}
	aid := e.publish("1", "c0")
	var r *rpc.FetchResponse
	e.eventually("the fetch to get the activation", func() bool {
		r = s1.fetch(t, 1)
		return r.Status == rpc.FetchOK
	})
	if r.Activation.ActivationID != aid || r.Activation.Action.Kind != hello.Kind || r.Activation.Action.Limits.Memory != 256 {
		t.Fatalf("fetch: %+v", r.Activation)
	}
	// Someone else's key: nothing is re-created.
	other := whisk.ActionMeta{Namespace: "guest", Name: "other", Rev: 1}
	s2 := e.session()
	if won, _, err := s2.ElectLeader(e.ctx, other.FQN(), whisk.LeaderInfo{SchedulerID: "s2", Addr: "x:1"}); err != nil || !won {
		t.Fatalf("elect other: %v %v", won, err)
	}
	fr, err := s1.rpc.Fetch(e.ctx, &rpc.FetchRequest{Namespace: "guest", Action: "other", Rev: 1, Alive: true})
	if err != nil || fr.Status != rpc.FetchNoQueue {
		t.Fatalf("fetch of someone else's action: %+v %v", fr, err)
	}
}

// A creation key whose write failed is deleted (the session forgets it),
// and a failed delete of a creation key is retried.
func TestCreationKeysCleanedUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var fs *flakySession
	s1 := e.schedulerWith("s1", scheduler.Config{},
		func(s *cluster.Session) scheduler.Session { fs = &flakySession{Session: s}; return fs })
	fs.failPuts.Store(1)
	fs.failDeletes.Store(1)
	inv := e.session()
	if err := inv.RegisterInvoker(e.ctx, whisk.InvokerInfo{ID: "i0", Status: whisk.InvokerUp, UserMemory: 1024, FreeMemory: 1024}); err != nil {
		t.Fatal(err)
	}
	creations := e.subscribe(whisk.InvokerTopic("i0"), "invoker")
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	e.publish("1", "c0")
	cr := next[whisk.ContainerCreation](t, creations) // the retry after the failed put
	if cr.Retry != 1 {
		t.Fatalf("creation %+v, want the retry after the failed put", cr)
	}
	if d := fs.deletes(); len(d) != 2 || d[0] != cr.CreationID || d[1] != cr.CreationID {
		t.Fatalf("deletes %v: the failed put's key was not deleted (and retried) before the next put", d)
	}
	n, err := e.client.CountCreations(e.ctx, hello.FQN(), 1)
	if err != nil || n != 1 {
		t.Fatalf("creation keys %d %v, want the retry's", n, err)
	}
	if r := s1.fetch(t, 1); r.Status != rpc.FetchOK { // the queue is empty: no more creations
		t.Fatalf("fetch %+v", r)
	}
	fs.failDeletes.Store(1) // the delete after the ack fails once
	ack, _ := json.Marshal(whisk.CreationAck{CreationID: cr.CreationID, Action: hello, InvokerID: "i0", ContainerID: "c1"})
	if err := e.bus.Publish(e.ctx, whisk.CreationAckTopic("s1"), ack); err != nil {
		t.Fatal(err)
	}
	e.eventually("the creation key deleted despite a failed delete", func() bool {
		n, err := e.client.CountCreations(e.ctx, hello.FQN(), 1)
		return err == nil && n == 0
	})
	if d := fs.deletes(); len(d) != 4 {
		t.Fatalf("deletes %v, want 2 after the failed put and 2 after the ack", d)
	}
}

// The action is deleted and created again while its queue lives: the
// queue ends with the old topic, and the next CreateQueue starts one that
// reads the new topic, with the new action's metadata.
func TestTopicRecreatedGetsFreshQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s1 := e.scheduler("s1", scheduler.Config{Park: 200 * time.Millisecond})
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	e.publish("1", "c0")
	if r := s1.fetch(t, 1); r.Status != rpc.FetchOK { // the queue reads the topic
		t.Fatalf("fetch %+v", r)
	}
	topic := whisk.ActionTopic(hello.FQN())
	if err := e.bus.DeleteTopic(e.ctx, topic); err != nil {
		t.Fatal(err)
	}
	e.eventually("the old queue's leader key to go", func() bool {
		_, ok, err := e.client.Leader(e.ctx, hello.FQN())
		return err == nil && !ok
	})
	if err := e.bus.EnsureTopic(e.ctx, topic); err != nil {
		t.Fatal(err)
	}
	fresh := hello
	fresh.Kind = "nodejs:18" // a new action: revisions start again at 1
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: fresh}); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(whisk.ActivationMessage{ActivationID: "00000000000000000000000000000002", Action: fresh,
		ControllerID: "c0", Published: time.Now().UnixMilli()})
	if err := e.bus.Publish(e.ctx, topic, b); err != nil {
		t.Fatal(err)
	}
	r := s1.fetch(t, 1)
	if r.Status != rpc.FetchOK || r.Activation.ActivationID != "00000000000000000000000000000002" || r.Activation.Action.Kind != "nodejs:18" {
		t.Fatalf("fetch on the new topic: %+v", r)
	}
}

// The action is updated while a creation of its old revision is in
// flight; that creation then fails as the action's fault. The new revision
// is not held to it: its creation goes out, nothing is failed, and every
// activation runs on the new code.
func TestOldRevisionCreationFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s1 := e.scheduler("s1", scheduler.Config{})
	inv := e.session()
	if err := inv.RegisterInvoker(e.ctx, whisk.InvokerInfo{ID: "i0", Status: whisk.InvokerUp, UserMemory: 4096, FreeMemory: 4096}); err != nil {
		t.Fatal(err)
	}
	creations := e.subscribe(whisk.InvokerTopic("i0"), "invoker")
	completions := e.subscribe(whisk.CompletionTopic("c0"), "controller")
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	a1 := e.publish("1", "c0")
	c1 := next[whisk.ContainerCreation](t, creations)
	rev2 := hello
	rev2.Rev = 2
	b, _ := json.Marshal(whisk.ActivationMessage{ActivationID: "00000000000000000000000000000002", Action: rev2,
		ControllerID: "c0", Published: time.Now().UnixMilli()})
	if err := e.bus.Publish(e.ctx, whisk.ActionTopic(hello.FQN()), b); err != nil {
		t.Fatal(err)
	}
	c2 := next[whisk.ContainerCreation](t, creations)
	if c2.Action.Rev != 2 {
		t.Fatalf("creation %+v, want one of rev 2", c2)
	}
	ack := func(a whisk.CreationAck) {
		b, _ := json.Marshal(a)
		if err := e.bus.Publish(e.ctx, whisk.CreationAckTopic("s1"), b); err != nil {
			t.Fatal(err)
		}
	}
	ack(whisk.CreationAck{CreationID: c1.CreationID, Action: hello, InvokerID: "i0", Error: "the action changed", Developer: true})
	ctx, cancel := context.WithTimeout(e.ctx, 500*time.Millisecond)
	defer cancel()
	if recs, err := completions.Poll(ctx, 1); err == nil {
		t.Fatalf("an activation was failed: %s", recs[0].Value)
	}
	ack(whisk.CreationAck{CreationID: c2.CreationID, Action: rev2, InvokerID: "i0", ContainerID: "c2"})
	got := map[whisk.ActivationID]bool{}
	for range 2 {
		r := s1.fetch(t, 2)
		if r.Status != rpc.FetchOK || r.Activation.Action.Rev != 2 {
			t.Fatalf("fetch: %+v", r)
		}
		got[r.Activation.ActivationID] = true
	}
	if !got[a1] || !got["00000000000000000000000000000002"] {
		t.Fatalf("fetched %v", got)
	}
}

// The invoker acks a creation with the action's newer revision (the action
// changed under it): the queue adopts it and asks for a container of the
// new revision instead of failing the activation.
func TestCreationAckWithNewerRevision(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s1 := e.scheduler("s1", scheduler.Config{})
	inv := e.session()
	if err := inv.RegisterInvoker(e.ctx, whisk.InvokerInfo{ID: "i0", Status: whisk.InvokerUp, UserMemory: 4096, FreeMemory: 4096}); err != nil {
		t.Fatal(err)
	}
	creations := e.subscribe(whisk.InvokerTopic("i0"), "invoker")
	completions := e.subscribe(whisk.CompletionTopic("c0"), "controller")
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	e.publish("1", "c0")
	c1 := next[whisk.ContainerCreation](t, creations)
	rev2 := hello
	rev2.Rev = 2
	b, _ := json.Marshal(whisk.CreationAck{CreationID: c1.CreationID, Action: rev2, InvokerID: "i0", Error: "the action changed", Developer: true})
	if err := e.bus.Publish(e.ctx, whisk.CreationAckTopic("s1"), b); err != nil {
		t.Fatal(err)
	}
	if c2 := next[whisk.ContainerCreation](t, creations); c2.Action.Rev != 2 {
		t.Fatalf("creation %+v, want one of rev 2", c2)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	defer cancel()
	if recs, err := completions.Poll(ctx, 1); err == nil {
		t.Fatalf("the activation was failed: %s", recs[0].Value)
	}
}
