package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/bus/kafka"
	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/cluster/clustertest"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/eddy-faas/eddy/internal/testenv"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// The failover tests run schedulers over gRPC on a real embedded etcd and
// the Kafka bus on an in-process kfake cluster; each scheduler has its own
// etcd client, lease and Kafka client, as separate processes would.

// store is an in-test store: PutActivation and GetActivation (NotFound for
// a missing record), counting the look-ups that found a record (each one
// an activation a new leader skipped as already handed out).
type store struct {
	mu    sync.Mutex
	m     map[whisk.ActivationID]whisk.Activation
	found atomic.Int64
}

func (s *store) PutActivation(_ context.Context, a whisk.Activation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[a.ActivationID] = a
	return nil
}

func (s *store) GetActivation(_ context.Context, ns string, id whisk.ActivationID) (whisk.Activation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.m[id]
	if !ok || a.Namespace != ns {
		return whisk.Activation{}, whisk.E("test.GetActivation", whisk.NotFound, "", errors.New("no record"))
	}
	s.found.Add(1)
	return a, nil
}

// crashDialer opens Kafka connections that crash() severs, refusing new
// ones after: the client vanishes as a killed process does, without
// committing or leaving its group.
type crashDialer struct {
	mu      sync.Mutex
	conns   []net.Conn
	crashed bool
}

func (d *crashDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.crashed {
		return nil, errors.New("crashed")
	}
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.conns = append(d.conns, conn)
	}
	return conn, err
}

func (d *crashDialer) crash() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.crashed = true
	for _, c := range d.conns {
		c.Close()
	}
}

type kenv struct {
	t       *testing.T
	ctx     context.Context
	etcd    []string
	client  *cluster.Client // the test's own reads
	brokers []string
	store   *store
}

func newKafkaEnv(t *testing.T) *kenv {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	c := clustertest.StartTestCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	cli, err := cluster.Dial(ctx, c.Endpoints(), testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return &kenv{t: t, ctx: ctx, etcd: c.Endpoints(), client: cli, brokers: kc.ListenAddrs(),
		store: &store{m: map[whisk.ActivationID]whisk.Activation{}}}
}

func (e *kenv) bus(dial func(context.Context, string, string) (net.Conn, error)) *kafka.Bus {
	e.t.Helper()
	b, err := kafka.New(e.ctx, kafka.Config{
		Brokers: e.brokers, ClientID: "eddy-test", Log: quiet, // a crashed client's retries are noise
		SessionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond, RebalanceTimeout: 2 * time.Second,
		Dial: dial,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = b.Close() })
	return b
}

// proc is a scheduler process: its own etcd client and lease, its own
// Kafka client.
type proc struct {
	id      string
	addr    string
	s       *scheduler.Scheduler
	etcd    *cluster.Client
	sess    *cluster.Session
	kafka   *crashDialer
	crashed atomic.Bool
	cancel  context.CancelFunc
	done    chan struct{}
}

const leaseTTL = 2 * time.Second

var quiet = slog.New(slog.DiscardHandler)

func (e *kenv) scheduler(id string, cfg scheduler.Config) *proc {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.ID, cfg.Addr = id, ln.Addr().String()
	p := &proc{id: id, addr: cfg.Addr, kafka: &crashDialer{}, done: make(chan struct{})}
	if p.etcd, err = cluster.Dial(e.ctx, e.etcd, quiet); err != nil {
		e.t.Fatal(err)
	}
	if p.sess, err = cluster.NewSession(e.ctx, p.etcd, leaseTTL, testLog()); err != nil {
		e.t.Fatal(err)
	}
	b := e.bus(p.kafka.dial)
	p.s, err = scheduler.New(cfg, scheduler.Deps{
		Log: testLog().With("sid", id), Bus: b, Session: p.sess, Client: p.etcd,
		Activations: e.store, Now: time.Now, Listener: ln, Handovers: p.sess, Assigner: b,
		Credentials: insecure.NewCredentials(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	p.cancel = cancel
	sessDone := make(chan struct{})
	go func() { defer close(sessDone); _ = p.sess.Run(ctx) }()
	go func() {
		defer close(p.done)
		if err := p.s.Run(ctx); err != nil {
			e.t.Errorf("scheduler %s: Run: %v", id, err)
		}
		<-sessDone
		if !p.crashed.Load() { // a crashed process revokes nothing
			cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = p.sess.Close(cctx)
			ccancel()
			_ = p.etcd.Close()
		}
	}()
	e.t.Cleanup(func() {
		p.cancel()
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			e.t.Errorf("scheduler %s did not stop", id)
		}
	})
	e.eventually("scheduler "+id+" registered", func() bool {
		ss, err := e.client.Schedulers(e.ctx)
		for _, si := range ss {
			if si.ID == id {
				return err == nil
			}
		}
		return false
	})
	return p
}

// crash kills p as kill -9 would, as far as others can tell: its Kafka
// connections are severed (no commit, no LeaveGroup), its etcd client is
// closed (no resign, no revoke: its lease expires after the TTL), and its
// goroutines are stopped.
func (p *proc) crash() {
	p.crashed.Store(true)
	p.kafka.crash()
	_ = p.etcd.Close()
	p.cancel()
}

func (e *kenv) eventually(what string, cond func() bool) {
	e.t.Helper()
	testenv.Eventually(e.t, 15*time.Second, what, cond)
}

func (e *kenv) followers(f whisk.FQN) []string {
	e.t.Helper()
	fs, err := e.client.Followers(e.ctx, f)
	if err != nil {
		e.t.Fatal(err)
	}
	ids := make([]string, len(fs))
	for i, li := range fs {
		ids[i] = li.SchedulerID
	}
	return ids
}

// container is a fake container: a Fetch loop that follows the leader key
// (re-read after a failed fetch or noQueue, as a proxy does), records what
// it got from whom, and writes a record for each activation at once.
type container struct {
	e     *kenv
	f     whisk.FQN
	conns map[string]*rpc.Client

	mu       sync.Mutex
	got      map[whisk.ActivationID]int
	from     map[string]int // scheduler address → activations received
	first    map[string]time.Time
	rereads  int
	received chan struct{} // signalled on every activation
}

func (e *kenv) container(f whisk.FQN) *container {
	return &container{e: e, f: f, conns: map[string]*rpc.Client{}, got: map[whisk.ActivationID]int{},
		from: map[string]int{}, first: map[string]time.Time{}, received: make(chan struct{}, 1)}
}

func (c *container) conn(addr string) *rpc.Client {
	if rc, ok := c.conns[addr]; ok {
		return rc
	}
	cc, err := grpc.NewClient(addr, append(rpc.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		c.e.t.Error(err)
		return nil
	}
	c.e.t.Cleanup(func() { _ = cc.Close() })
	rc := rpc.NewClient(cc)
	c.conns[addr] = rc
	return rc
}

func (c *container) run(ctx context.Context) {
	addr := ""
	for ctx.Err() == nil {
		if addr == "" {
			c.mu.Lock()
			c.rereads++
			c.mu.Unlock()
			li, ok, err := c.e.client.Leader(ctx, c.f)
			if err != nil || !ok {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			addr = li.Addr
		}
		rc := c.conn(addr)
		if rc == nil {
			return
		}
		fctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		r, err := rc.Fetch(fctx, &rpc.FetchRequest{Namespace: c.f.Namespace, Action: c.f.Name, Rev: 1,
			ContainerID: "c1", InvokerID: "i0", Alive: true, Warm: true})
		cancel()
		if err != nil || r.Status == rpc.FetchNoQueue || r.Status == rpc.FetchUnavailable {
			addr = "" // re-read the leader key
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if r.Status != rpc.FetchOK {
			continue
		}
		a := r.Activation
		now := time.Now()
		_ = c.e.store.PutActivation(ctx, whisk.Activation{Namespace: a.Action.Namespace, Name: a.Action.Name,
			ActivationID: a.ActivationID, StatusCode: whisk.StatusSuccess, Start: now.UnixMilli(), End: now.UnixMilli()})
		c.mu.Lock()
		c.got[a.ActivationID]++
		c.from[addr]++
		if _, ok := c.first[addr]; !ok {
			c.first[addr] = now
		}
		c.mu.Unlock()
		select {
		case c.received <- struct{}{}:
		default:
		}
	}
}

func (c *container) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// TestLeaderCrashFollowerTakesOver is a scheduler's failover with followers: a
// leader scheduler dies (kill -9 as far as etcd and Kafka can tell) while
// a container drains a steady stream of activations; its follower takes
// over, the container finds it through the leader key, and every
// activation is received exactly once: none lost, none run twice
// (activations the dead leader handed out without committing are skipped
// by id, their records being in the store).
func TestLeaderCrashFollowerTakesOver(t *testing.T) {
	t.Parallel()
	e := newKafkaEnv(t)
	act := whisk.ActionMeta{Namespace: "guest", Name: "failover", Rev: 1, Kind: "python:3",
		Limits: whisk.Limits{Timeout: 60000, Memory: 256, Concurrency: 1}}
	f := act.FQN()
	controller := e.bus(nil)
	topic := whisk.ActionTopic(f)
	for _, tp := range []string{topic, whisk.InvokerTopic("i0")} {
		if err := controller.EnsureTopic(e.ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	// An invoker with the action's container registered. The backlog makes
	// the queues ask for more containers; the requests go unanswered.
	inv, err := cluster.NewSession(e.ctx, e.client, 10*time.Second, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inv.Close(context.Background()) })
	if err := inv.RegisterInvoker(e.ctx, whisk.InvokerInfo{ID: "i0", Status: whisk.InvokerUp, UserMemory: 1 << 20, FreeMemory: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := inv.RegisterContainer(e.ctx, whisk.ContainerInfo{Namespace: f.Namespace, Action: f.Name, Rev: 1,
		InvokerID: "i0", ContainerID: "c1", MemoryMB: 256}); err != nil {
		t.Fatal(err)
	}

	cfg := scheduler.Config{Followers: 1, Tick: 20 * time.Millisecond, Park: 300 * time.Millisecond, CreationTimeout: time.Minute}
	s1 := e.scheduler("s1", cfg)
	s2 := e.scheduler("s2", cfg)
	rc := rpc.NewClient(mustDial(t, s1.addr))
	if r, err := rc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: act}); err != nil || r.Leader.SchedulerID != "s1" {
		t.Fatalf("CreateQueue on s1: %+v %v", r, err)
	}
	e.eventually("s2 to follow s1's queue", func() bool {
		ids := e.followers(f)
		return len(ids) == 1 && ids[0] == "s2"
	})

	c := e.container(f)
	cctx, stopContainer := context.WithCancel(e.ctx)
	containerDone := make(chan struct{})
	go func() { defer close(containerDone); c.run(cctx) }()
	defer func() { stopContainer(); <-containerDone }()

	// A steady stream of activations, published as a controller does.
	const n = 150
	published := make(chan error, 1)
	go func() {
		for i := range n {
			b, _ := json.Marshal(whisk.ActivationMessage{
				ActivationID: whisk.ActivationID(fmt.Sprintf("%032x", i+1)), Action: act, Subject: "guest",
				Params: json.RawMessage(`{}`), ControllerID: "c0", Published: time.Now().UnixMilli(),
			})
			if err := controller.Publish(e.ctx, topic, b); err != nil {
				published <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		published <- nil
	}()

	// The leader dies in the middle of the stream.
	e.eventually("the container to drain some activations from s1", func() bool { return c.distinct() >= n/3 })
	death := time.Now()
	s1.crash()
	t.Logf("leader s1 crashed after the container received %d activations", c.distinct())

	e.eventually("s2 to hold the leader key", func() bool {
		li, ok, err := e.client.Leader(e.ctx, f)
		return err == nil && ok && li.SchedulerID == "s2"
	})
	keyMoved := time.Since(death)
	if err := <-published; err != nil {
		t.Fatalf("publish: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.distinct() < n && time.Now().Before(deadline) {
		select {
		case <-c.received:
		case <-time.After(100 * time.Millisecond):
		}
	}
	stopContainer()
	<-containerDone

	c.mu.Lock()
	defer c.mu.Unlock()
	lost, twice := 0, 0
	for i := range n {
		switch c.got[whisk.ActivationID(fmt.Sprintf("%032x", i+1))] {
		case 0:
			lost++
		case 1:
		default:
			twice++
		}
	}
	firstNew, ok := c.first[s2.addr]
	if !ok {
		t.Fatal("the container never received an activation from s2")
	}
	t.Logf("failover: leader key on s2 %v after s1's death (lease TTL %v); first activation handed by s2 %v after it",
		keyMoved.Round(time.Millisecond), leaseTTL, firstNew.Sub(death).Round(time.Millisecond))
	t.Logf("activations %d: from s1 %d, from s2 %d; lost %d, run twice %d; skipped by id as already recorded %d; leader re-reads %d",
		n, c.from[s1.addr], c.from[s2.addr], lost, twice, e.store.found.Load(), c.rereads)
	if lost != 0 || twice != 0 {
		t.Fatalf("lost %d, run twice %d; want 0 and 0", lost, twice)
	}
	if c.rereads < 2 {
		t.Fatalf("the container read the leader key %d times; want a re-read after the failover", c.rereads)
	}
	// The new leader recruits no follower (no other scheduler is left),
	// and s2 no longer follows.
	e.eventually("no followers after the takeover", func() bool { return len(e.followers(f)) == 0 })
}

func mustDial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, append(rpc.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func (e *env) followers(f whisk.FQN) []string {
	e.t.Helper()
	fs, err := e.client.Followers(e.ctx, f)
	if err != nil {
		e.t.Fatal(err)
	}
	ids := make([]string, len(fs))
	for i, li := range fs {
		ids[i] = li.SchedulerID
	}
	return ids
}

func (e *env) leaderIs(f whisk.FQN, id string) func() bool {
	return func() bool {
		li, ok, err := e.client.Leader(e.ctx, f)
		if id == "" {
			return err == nil && !ok
		}
		return err == nil && ok && li.SchedulerID == id
	}
}

// A queue removed idle retires its followers with it: the leader key and
// the follower keys go in one revision, and the follower does not take
// over.
func TestIdleQueueRetiresFollowers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := scheduler.Config{Followers: 1, Park: 100 * time.Millisecond, IdleQueueTimeout: 500 * time.Millisecond}
	s1 := e.scheduler("s1", cfg)
	e.scheduler("s2", cfg)
	if r, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil || r.Leader.SchedulerID != "s1" {
		t.Fatalf("CreateQueue: %+v %v", r, err)
	}
	e.eventually("s2 to follow", func() bool { ids := e.followers(hello.FQN()); return len(ids) == 1 && ids[0] == "s2" })
	e.eventually("the idle queue's leader key to go", e.leaderIs(hello.FQN(), ""))
	if ids := e.followers(hello.FQN()); len(ids) != 0 {
		t.Fatalf("followers %v after the queue retired", ids)
	}
	time.Sleep(500 * time.Millisecond)
	if li, ok, _ := e.client.Leader(e.ctx, hello.FQN()); ok {
		t.Fatalf("%s took over a retired queue", li.SchedulerID)
	}
	if ids := e.followers(hello.FQN()); len(ids) != 0 {
		t.Fatalf("followers %v came back", ids)
	}
}

// A leader that stops (not idle: the scheduler shuts down) resigns the
// leader key alone: its follower takes over and delivers what the leader
// had not handed out.
func TestLeaderStopHandsOverToFollower(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := scheduler.Config{Followers: 1, Park: 200 * time.Millisecond}
	s1 := e.scheduler("s1", cfg)
	s2 := e.scheduler("s2", cfg)
	if r, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil || r.Leader.SchedulerID != "s1" {
		t.Fatalf("CreateQueue: %+v %v", r, err)
	}
	e.eventually("s2 to follow", func() bool { ids := e.followers(hello.FQN()); return len(ids) == 1 && ids[0] == "s2" })
	a1 := e.publish("1", "c0")
	if r := s1.fetch(t, 1); r.Status != rpc.FetchOK || r.Activation.ActivationID != a1 {
		t.Fatalf("fetch on s1: %+v", r)
	}
	a2 := e.publish("2", "c0") // buffered on s1, never handed there
	s1.stop(t)
	e.eventually("s2 to lead", e.leaderIs(hello.FQN(), "s2"))
	var r *rpc.FetchResponse
	e.eventually("s2 to hand out the activation s1 had not", func() bool {
		r = s2.fetch(t, 1)
		return r.Status == rpc.FetchOK
	})
	if r.Activation.ActivationID != a2 {
		t.Fatalf("s2 handed %s, want %s (and never %s again)", r.Activation.ActivationID, a2, a1)
	}
	// s2 follows no more, and no one is left to recruit.
	e.eventually("no followers", func() bool { return len(e.followers(hello.FQN())) == 0 })
}

// A follower whose lease ends is replaced: the leader recruits another
// scheduler at its next follower check.
func TestLostFollowerReplaced(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := scheduler.Config{Followers: 1, Park: 200 * time.Millisecond}
	s1 := e.scheduler("s1", cfg)
	s2 := e.scheduler("s2", cfg)
	if r, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil || r.Leader.SchedulerID != "s1" {
		t.Fatalf("CreateQueue: %+v %v", r, err)
	}
	e.eventually("s2 to follow", func() bool { ids := e.followers(hello.FQN()); return len(ids) == 1 && ids[0] == "s2" })
	e.scheduler("s3", cfg)
	// s2's process ends: its lease (and follower key) with it.
	s2.stop(t)
	if err := s2.sess.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ids := e.followers(hello.FQN())
		if len(ids) == 1 && ids[0] == "s3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("followers %v, want s3 recruited", ids)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !e.leaderIs(hello.FQN(), "s1")() {
		t.Fatal("s1 no longer leads")
	}
}
