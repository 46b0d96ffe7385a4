package scheduler

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/testenv"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// fakeSession is a func-field Session: the election answer is set by the test.
type fakeSession struct {
	mu        sync.Mutex
	leader    whisk.LeaderInfo // who ElectLeader says holds the key; zero = free
	resigns   int
	hooks     []func(context.Context)
	electFail int           // ElectLeader fails this many more times
	elects    int           // ElectLeader calls
	block     chan struct{} // when set, ElectLeader waits for it (or its ctx)
}

func (f *fakeSession) RegisterScheduler(context.Context, whisk.SchedulerInfo) error { return nil }
func (f *fakeSession) ElectLeader(ctx context.Context, _ whisk.FQN, me whisk.LeaderInfo) (bool, whisk.LeaderInfo, error) {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return false, whisk.LeaderInfo{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.elects++
	if f.electFail > 0 {
		f.electFail--
		return false, whisk.LeaderInfo{}, errors.New("etcd unreachable")
	}
	if f.leader.SchedulerID == "" || f.leader == me {
		f.leader = me
		return true, me, nil
	}
	return false, f.leader, nil
}
func (f *fakeSession) ResignLeader(context.Context, whisk.FQN) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resigns++
	f.leader = whisk.LeaderInfo{}
	return nil
}
func (f *fakeSession) RetireQueue(ctx context.Context, fqn whisk.FQN) error {
	return f.ResignLeader(ctx, fqn)
}
func (f *fakeSession) PutCreation(context.Context, whisk.CreationInfo, int64) (bool, error) {
	return true, nil
}
func (f *fakeSession) DeleteCreation(context.Context, whisk.CreationInfo) error { return nil }
func (f *fakeSession) RegisterFollower(context.Context, whisk.FQN, whisk.LeaderInfo) error {
	return nil
}
func (f *fakeSession) DeregisterFollower(context.Context, whisk.FQN, string) error { return nil }
func (f *fakeSession) OnRegrant(fn func(context.Context)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hooks = append(f.hooks, fn)
}

func (f *fakeSession) regrant(ctx context.Context) {
	f.mu.Lock()
	hooks := append([]func(context.Context){}, f.hooks...)
	f.mu.Unlock()
	for _, h := range hooks {
		h(ctx)
	}
}

type fakeClient struct{}

func (fakeClient) Leader(context.Context, whisk.FQN) (whisk.LeaderInfo, bool, error) {
	return whisk.LeaderInfo{}, false, nil
}
func (fakeClient) Invokers(context.Context) ([]whisk.InvokerInfo, error)          { return nil, nil }
func (fakeClient) CountContainers(context.Context, whisk.FQN, int64) (int, error) { return 0, nil }
func (fakeClient) CountNamespace(context.Context, string) (int, int, error)       { return 0, 0, nil }
func (fakeClient) Schedulers(context.Context) ([]whisk.SchedulerInfo, error)      { return nil, nil }
func (fakeClient) Followers(context.Context, whisk.FQN) ([]whisk.LeaderInfo, error) {
	return nil, nil
}
func (fakeClient) LeadersOf(context.Context, string) ([]whisk.FQN, error) { return nil, nil }
func (fakeClient) WatchLeader(ctx context.Context, _ whisk.FQN, _ func(whisk.LeaderInfo, bool, bool)) error {
	<-ctx.Done()
	return nil
}

func (fakeClient) CountUsed(context.Context, whisk.FQN, int64) (int, int, int64, error) {
	return 0, 0, 0, nil
}
func (fakeClient) NamespaceShare(context.Context, string) (map[string]int, map[string]bool, error) {
	return map[string]int{}, map[string]bool{}, nil
}
func (fakeClient) HasDemand(context.Context, string) (bool, error) { return false, nil }
func (fakeClient) WatchContainerDeletes(ctx context.Context, _ func(whisk.ContainerInfo)) error {
	<-ctx.Done()
	return nil
}

func (*fakeSession) PutDemand(context.Context, whisk.FQN, string) error { return nil }
func (*fakeSession) DeleteDemand(context.Context, whisk.FQN) error      { return nil }

type nopStore struct{}

func (nopStore) GetActivation(context.Context, string, whisk.ActivationID) (whisk.Activation, error) {
	return whisk.Activation{}, whisk.E("get", whisk.NotFound, "", nil)
}

func (nopStore) PutActivation(context.Context, whisk.Activation) error { return nil }

// startFake runs a scheduler on a fakeSession with one queue for meta.
func startFake(t *testing.T, sess *fakeSession, meta whisk.ActionMeta) (context.Context, *Scheduler) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{ID: "s1", Addr: ln.Addr().String()}, Deps{
		Bus: memory.New(nil), Session: sess, Client: fakeClient{}, Activations: nopStore{}, Listener: ln,
		Credentials: insecure.NewCredentials(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	var r *rpc.CreateQueueResponse
	for deadline := time.Now().Add(30 * time.Second); ; { // until Run accepts queues (a hang guard)
		if r, err = s.CreateQueue(ctx, &rpc.CreateQueueRequest{Action: meta}); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || r.Leader.SchedulerID != "s1" {
		t.Fatalf("CreateQueue: %+v %v", r, err)
	}
	return ctx, s
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, what, cond)
}

func (f *fakeSession) holder() whisk.LeaderInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

func TestRegrantAbandonsLostQueues(t *testing.T) {
	sess := &fakeSession{}
	meta := whisk.ActionMeta{Namespace: "guest", Name: "hello", Rev: 1}
	ctx, s := startFake(t, sess, meta)

	// A re-grant that finds the key still ours keeps the queue.
	sess.regrant(ctx)
	s.mu.RLock()
	e := s.queues[meta.FQN()]
	s.mu.RUnlock()
	if e == nil || !e.live() {
		t.Fatal("queue gone after a re-grant that kept the key")
	}

	// Someone else took the key while the lease was gone: the queue is
	// abandoned and the key is not resigned (it is not ours).
	sess.mu.Lock()
	sess.leader = whisk.LeaderInfo{SchedulerID: "s2", Addr: "elsewhere:1"}
	sess.mu.Unlock()
	sess.regrant(ctx)
	select {
	case <-e.gone:
	case <-time.After(5 * time.Second):
		t.Fatal("lost queue not removed")
	}
	fr, err := s.Fetch(ctx, &rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: 1, Alive: true})
	if err != nil || fr.Status != rpc.FetchNoQueue {
		t.Fatalf("fetch after the loss: %+v %v", fr, err)
	}
	sess.mu.Lock()
	resigns := sess.resigns
	sess.mu.Unlock()
	if resigns != 0 {
		t.Fatalf("%d resigns of a key held by another scheduler", resigns)
	}
	// CreateQueue now answers with the new leader.
	r, err := s.CreateQueue(ctx, &rpc.CreateQueueRequest{Action: meta})
	if err != nil || r.Leader.SchedulerID != "s2" {
		t.Fatalf("CreateQueue after the loss: %+v %v", r, err)
	}
}

// A re-election that fails after a re-grant is retried until it wins; the
// re-grant hook itself returns at once (it runs on the session's
// keep-alive goroutine; it waits for one re-election pass at most).
func TestRegrantRetriesFailedReelection(t *testing.T) {
	sess := &fakeSession{}
	meta := whisk.ActionMeta{Namespace: "guest", Name: "hello", Rev: 1}
	ctx, s := startFake(t, sess, meta)

	// The key went with the old lease; etcd is slow, then fails twice.
	sess.mu.Lock()
	sess.leader = whisk.LeaderInfo{}
	sess.electFail = 2
	sess.block = make(chan struct{})
	block := sess.block
	sess.mu.Unlock()
	// The hook waits for the re-election (the session revokes the old
	// lease after it), which is bounded by the etcd call timeout.
	returned := make(chan struct{})
	go func() { sess.regrant(ctx); close(returned) }()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the re-grant hook waits for etcd beyond the call timeout")
	}
	close(block)
	eventually(t, "the leader key re-asserted after failed re-elections", func() bool {
		return sess.holder() == s.me
	})
	s.mu.RLock()
	e := s.queues[meta.FQN()]
	s.mu.RUnlock()
	if e == nil || !e.live() {
		t.Fatal("queue gone after a re-election that won")
	}
}

// CreateQueue on a live queue re-asserts its leader key; when someone else
// holds it, the local queue is abandoned and the holder is the answer.
func TestCreateQueueReassertsKey(t *testing.T) {
	sess := &fakeSession{}
	meta := whisk.ActionMeta{Namespace: "guest", Name: "hello", Rev: 1}
	ctx, s := startFake(t, sess, meta)

	sess.mu.Lock()
	sess.leader = whisk.LeaderInfo{} // lost with an old lease
	sess.mu.Unlock()
	r, err := s.CreateQueue(ctx, &rpc.CreateQueueRequest{Action: meta})
	if err != nil || r.Leader != s.me || sess.holder() != s.me {
		t.Fatalf("CreateQueue %+v %v, key %+v", r, err, sess.holder())
	}

	s.mu.RLock()
	e := s.queues[meta.FQN()]
	s.mu.RUnlock()
	s2 := whisk.LeaderInfo{SchedulerID: "s2", Addr: "elsewhere:1"}
	sess.mu.Lock()
	sess.leader = s2
	sess.mu.Unlock()
	r, err = s.CreateQueue(ctx, &rpc.CreateQueueRequest{Action: meta})
	if err != nil || r.Leader != s2 {
		t.Fatalf("CreateQueue with the key elsewhere: %+v %v", r, err)
	}
	select {
	case <-e.gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the local queue was not abandoned")
	}
	sess.mu.Lock()
	resigns := sess.resigns
	sess.mu.Unlock()
	if resigns != 0 {
		t.Fatalf("%d resigns of a key held by another scheduler", resigns)
	}
}
