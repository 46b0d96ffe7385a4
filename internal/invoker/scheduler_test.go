package invoker_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/cluster/clustertest"
	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// fetchGate is the invoker's way to the scheduler (Deps.Local, a direct
// call as in standalone) and counts the fetches waiting at the queue.
type fetchGate struct {
	mu      sync.Mutex
	to      invoker.Fetcher
	waiting atomic.Int32
}

func (g *fetchGate) set(f invoker.Fetcher) { g.mu.Lock(); g.to = f; g.mu.Unlock() }

func (g *fetchGate) Fetch(ctx context.Context, req *rpc.FetchRequest) (*rpc.FetchResponse, error) {
	g.mu.Lock()
	to := g.to
	g.mu.Unlock()
	if to == nil {
		return &rpc.FetchResponse{Status: rpc.FetchUnavailable}, nil
	}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	return to.Fetch(ctx, req)
}

// TestWithRealScheduler runs the invoker against internal/scheduler on its
// own etcd: the queue asks for a container, the invoker creates it, its
// proxy fetches from the queue, and the completions come back; once idle,
// the container goes.
//
// Each activation is published once the container's next fetch waits at
// the queue: the proxy fetches again only after it published the previous
// completion, and an activation that waited past the queue's staleness
// threshold for that fetch (the machine was busy) rightly gets a second
// container, which is the queue's policy, not what this test is about.
func TestWithRealScheduler(t *testing.T) {
	t.Parallel()
	c := clustertest.StartTestCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client, err := cluster.Dial(ctx, c.Endpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate := &fetchGate{}
	e := newEnvWith(t, invoker.Config{IdleTimeout: 1500 * time.Millisecond}, client,
		envWrap{local: map[string]invoker.Fetcher{l.Addr().String(): gate}})
	defer e.shutdown() // before the etcd client closes

	sess, err := cluster.NewSession(ctx, client, 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	go func() { _ = sess.Run(sctx) }()
	defer func() {
		scancel()
		_ = sess.Close(context.Background())
	}()
	sched, err := scheduler.New(scheduler.Config{ID: "real", Addr: l.Addr().String()}, scheduler.Deps{
		Log: testLog(t), Bus: e.bus, Session: sess, Client: client, Activations: e.store, Listener: l,
		Credentials: insecure.NewCredentials(),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopSched := context.WithCancel(context.Background())
	schedDone := make(chan error, 1)
	gate.set(rpc.NewLocal(sched))
	go func() { schedDone <- sched.Run(runCtx) }()
	defer func() {
		stopSched()
		<-schedDone
	}()

	a := e.putAction("real", "python:3.11", helloPy, whisk.Limits{})
	topic := whisk.ActionTopic(a.FQN())
	if err := e.bus.EnsureTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(l.Addr().String(), append(rpc.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := rpc.NewClient(cc).CreateQueue(ctx, &rpc.CreateQueueRequest{Action: a.Meta()}); err != nil {
		t.Fatal(err)
	}

	publish := func(name string) whisk.ActivationID {
		m := whisk.ActivationMessage{
			ActivationID: whisk.NewActivationID(), TransactionID: "t", Action: a.Meta(), Subject: "guest",
			Params: json.RawMessage(`{"name":"` + name + `"}`), Blocking: true, ControllerID: "c0",
			Published: time.Now().UnixMilli(),
		}
		b, _ := json.Marshal(m)
		if err := e.bus.Publish(ctx, topic, b); err != nil {
			t.Fatal(err)
		}
		return m.ActivationID
	}
	for i, name := range []string{"one", "two", "three"} {
		if i > 0 {
			waitFor(t, 30*time.Second, "the container's next fetch", func() bool { return gate.waiting.Load() > 0 })
		}
		id := publish(name)
		rec := e.completion(30 * time.Second)
		if rec.ActivationID != id || !rec.Response.Success || !strings.Contains(string(rec.Response.Result), "Hello "+name) {
			t.Fatalf("activation %d: %+v %s", i, rec.Response, rec.Response.Result)
		}
		_, cold := annotation(rec, whisk.AnnInitTime)
		if cold != (i == 0) {
			t.Errorf("activation %d: cold %v", i, cold)
		}
	}
	if n := e.containers(a); n != 1 {
		t.Errorf("%d containers registered, want 1", n)
	}
	waitFor(t, 15*time.Second, "idle container removed", func() bool {
		return e.containers(a) == 0 && e.inv.FreeMemoryMB() == 2048
	})
}
