package scheduler

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// fakeSession is a func-field Session: the election answer is set by the test.
type fakeSession struct {
	mu      sync.Mutex
	leader  whisk.LeaderInfo // who ElectLeader says holds the key; zero = free
	resigns int
	hooks   []func(context.Context)
}

func (f *fakeSession) RegisterScheduler(context.Context, whisk.SchedulerInfo) error { return nil }
func (f *fakeSession) ElectLeader(_ context.Context, _ whisk.FQN, me whisk.LeaderInfo) (bool, whisk.LeaderInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
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
func (f *fakeSession) PutCreation(context.Context, whisk.CreationInfo) error    { return nil }
func (f *fakeSession) DeleteCreation(context.Context, whisk.CreationInfo) error { return nil }
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

func (fakeClient) Invokers(context.Context) ([]whisk.InvokerInfo, error)          { return nil, nil }
func (fakeClient) CountContainers(context.Context, whisk.FQN, int64) (int, error) { return 0, nil }
func (fakeClient) CountNamespace(context.Context, string) (int, int, error)       { return 0, 0, nil }

type nopStore struct{}

func (nopStore) PutActivation(context.Context, whisk.Activation) error { return nil }

func TestRegrantAbandonsLostQueues(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sess := &fakeSession{}
	s, err := New(Config{ID: "s1", Addr: ln.Addr().String()}, Deps{
		Bus: memory.New(nil), Session: sess, Client: fakeClient{}, Activations: nopStore{}, Listener: ln,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	meta := whisk.ActionMeta{Namespace: "guest", Name: "hello", Rev: 1}
	var r *rpc.CreateQueueResponse
	for deadline := time.Now().Add(5 * time.Second); ; { // until Run accepts queues
		if r, err = s.CreateQueue(ctx, &rpc.CreateQueueRequest{Action: meta}); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || r.Leader.SchedulerID != "s1" {
		t.Fatalf("CreateQueue: %+v %v", r, err)
	}

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
	r, err = s.CreateQueue(ctx, &rpc.CreateQueueRequest{Action: meta})
	if err != nil || r.Leader.SchedulerID != "s2" {
		t.Fatalf("CreateQueue after the loss: %+v %v", r, err)
	}
}
