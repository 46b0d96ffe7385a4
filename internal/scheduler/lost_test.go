package scheduler_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// firstStore keeps the first record of an activation, as the real stores
// do (store.Store.PutActivation), and reads them back.
type firstStore struct {
	mu sync.Mutex
	m  map[whisk.ActivationID]whisk.Activation
}

func (s *firstStore) PutActivation(_ context.Context, a whisk.Activation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[a.ActivationID]; !ok {
		s.m[a.ActivationID] = a
	}
	return nil
}

func (s *firstStore) GetActivation(_ context.Context, ns string, id whisk.ActivationID) (whisk.Activation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.m[id]
	if !ok || a.Namespace != ns {
		return whisk.Activation{}, whisk.E("test.GetActivation", whisk.NotFound, "", errors.New("no record"))
	}
	return a, nil
}

func (s *firstStore) get(id whisk.ActivationID) (whisk.Activation, bool) {
	a, err := s.GetActivation(context.Background(), "guest", id)
	return a, err == nil
}

// invokerSession is an invoker's lease; kill stops its keep-alives without
// revoking it, as kill -9 does: its keys vanish when the TTL runs out.
func invokerSession(t *testing.T, e *env, id string) (*cluster.Session, func()) {
	t.Helper()
	s, err := cluster.NewSession(e.ctx, e.client, 2*time.Second, testLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	kill := func() { cancel(); <-done }
	t.Cleanup(func() { kill(); _ = s.Close(context.Background()) })
	if err := s.RegisterInvoker(e.ctx, whisk.InvokerInfo{ID: id, Status: whisk.InvokerUp, UserMemory: 1024, FreeMemory: 1024}); err != nil {
		t.Fatal(err)
	}
	return s, kill
}

// TestKilledInvokersActivationsGetErrorRecords: a scheduler on a real etcd
// hands activations to containers of two invokers; one invoker dies (its
// lease expires): the activation its container was running gets a "whisk
// internal error" record naming the invoker, and its completion reaches
// the waiting controller. The other invoker's container, which recorded
// its activation and then went idle (key deleted), gets no error record.
func TestKilledInvokersActivationsGetErrorRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	st := &firstStore{m: map[whisk.ActivationID]whisk.Activation{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := scheduler.New(scheduler.Config{ID: "s1", Addr: ln.Addr().String(), Tick: 20 * time.Millisecond, Park: 300 * time.Millisecond},
		scheduler.Deps{Log: testLog(), Bus: e.bus, Session: e.session(), Client: e.client, Activations: st, Listener: ln,
			Credentials: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	cc, err := grpc.NewClient(ln.Addr().String(), append(rpc.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	sc := rpc.NewClient(cc)

	inv1, kill1 := invokerSession(t, e, "i1")
	inv2, _ := invokerSession(t, e, "i2")
	c1 := whisk.ContainerInfo{Namespace: "guest", Action: "hello", Rev: 1, InvokerID: "i1", ContainerID: "c1", MemoryMB: 256}
	c2 := whisk.ContainerInfo{Namespace: "guest", Action: "hello", Rev: 1, InvokerID: "i2", ContainerID: "c2", MemoryMB: 256}
	if err := inv1.RegisterContainer(e.ctx, c1); err != nil {
		t.Fatal(err)
	}
	if err := inv2.RegisterContainer(e.ctx, c2); err != nil {
		t.Fatal(err)
	}
	completions := e.subscribe(whisk.CompletionTopic("ctl"), "controller")
	if _, err := sc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	fetch := func(c whisk.ContainerInfo) whisk.ActivationID {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			r, err := sc.Fetch(e.ctx, &rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: 1,
				InvokerID: c.InvokerID, ContainerID: c.ContainerID, Alive: true, Warm: true})
			if err != nil {
				t.Fatal(err)
			}
			if r.Status == rpc.FetchOK {
				return r.Activation.ActivationID
			}
		}
		t.Fatalf("%s got no activation", c.ContainerID)
		return ""
	}
	e.publish("1", "ctl")
	on1 := fetch(c1)
	e.publish("2", "ctl")
	on2 := fetch(c2)

	// i2's container finishes: the invoker records it, then the container
	// goes idle and its key is deleted.
	done2 := whisk.Activation{Namespace: "guest", Name: "hello", ActivationID: on2, Response: whisk.Response{Status: "success", Success: true}}
	if err := st.PutActivation(e.ctx, done2); err != nil {
		t.Fatal(err)
	}
	if err := inv2.DeregisterContainer(e.ctx, c2); err != nil {
		t.Fatal(err)
	}
	// i1 dies while c1 runs its activation.
	killed := time.Now()
	kill1()

	comp := next[whisk.Completion](t, completions)
	took := time.Since(killed)
	t.Logf("error record and completion %v after the kill (lease TTL 2 s, grace %v)", took.Round(10*time.Millisecond), 2*time.Second)
	if comp.Activation.ActivationID != on1 {
		t.Fatalf("completion of %s, want %s", comp.Activation.ActivationID, on1)
	}
	rec, ok := st.get(on1)
	if !ok {
		t.Fatal("no record of the killed invoker's activation")
	}
	if rec.Response.Status != "whisk internal error" || rec.Response.Success || !strings.Contains(string(rec.Response.Result), "i1") ||
		!strings.Contains(string(rec.Response.Result), "c1") {
		t.Errorf("record %q %s; want a whisk internal error naming i1 and c1", rec.Response.Status, rec.Response.Result)
	}
	if comp.Activation.Response.Status != rec.Response.Status {
		t.Errorf("completion %q, record %q", comp.Activation.Response.Status, rec.Response.Status)
	}
	// A late record of the dead invoker (it was only partitioned) does not
	// replace the one the caller was told.
	late := whisk.Activation{Namespace: "guest", Name: "hello", ActivationID: on1, Response: whisk.Response{Status: "success", Success: true}}
	_ = st.PutActivation(e.ctx, late)
	if rec, _ := st.get(on1); rec.Response.Success {
		t.Error("a late record replaced the error record")
	}
	// The idle container's recorded activation keeps its record, and no
	// error completion follows for it.
	time.Sleep(3 * time.Second) // two graces: a wrong error record would be written by now
	if rec, _ := st.get(on2); !rec.Response.Success {
		t.Errorf("the recorded activation of the idle container got %q", rec.Response.Status)
	}
	pctx, pcancel := context.WithTimeout(e.ctx, 200*time.Millisecond)
	defer pcancel()
	if recs, err := completions.Poll(pctx, 10); err == nil && len(recs) > 0 {
		t.Errorf("%d more completions, want none", len(recs))
	}
}
