package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// fakeInvoker plays an invoker for the share test: it takes creation
// requests, registers and acknowledges each container, and runs a fetch
// loop per container against the scheduler that asked (each activation
// "runs" 100 ms); told release, the container says goodbye and
// deregisters, as the real proxy does.
type fakeInvoker struct {
	e        *env
	sess     *cluster.Session
	clients  map[string]*rpc.Client // scheduler address → client
	n        atomic.Int64
	released atomic.Int64
	mu       sync.Mutex
	ran      map[whisk.ActivationID]string // activation → action that ran it
}

func startFakeInvoker(ctx context.Context, t *testing.T, e *env, scheds ...*sched) *fakeInvoker {
	fi := &fakeInvoker{e: e, sess: e.session(), clients: map[string]*rpc.Client{}, ran: map[whisk.ActivationID]string{}}
	for _, s := range scheds {
		fi.clients[s.addr] = s.rpc
	}
	if err := fi.sess.RegisterInvoker(e.ctx, whisk.InvokerInfo{ID: "i0", Status: whisk.InvokerUp, UserMemory: 1 << 20, FreeMemory: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	creations := e.subscribe(whisk.InvokerTopic("i0"), "invoker")
	go func() {
		for ctx.Err() == nil {
			recs, err := creations.Poll(ctx, 16)
			if err != nil {
				return
			}
			for _, r := range recs {
				var cr whisk.ContainerCreation
				_ = json.Unmarshal(r.Value, &cr)
				ci := whisk.ContainerInfo{Namespace: cr.Action.Namespace, Action: cr.Action.Name, Rev: cr.Action.Rev,
					InvokerID: "i0", ContainerID: fmt.Sprintf("c%d", fi.n.Add(1))}
				if err := fi.sess.RegisterContainer(ctx, ci); err != nil {
					return
				}
				ack, _ := json.Marshal(whisk.CreationAck{CreationID: cr.CreationID, Action: cr.Action, InvokerID: "i0", ContainerID: ci.ContainerID})
				_ = e.bus.Publish(ctx, whisk.CreationAckTopic(cr.SchedulerID), ack)
				go fi.container(ctx, fi.clients[cr.SchedulerAddr], ci)
			}
			if len(recs) > 0 {
				_ = creations.Commit(ctx, recs[len(recs)-1].Offset)
			}
		}
	}()
	return fi
}

func (fi *fakeInvoker) container(ctx context.Context, c *rpc.Client, ci whisk.ContainerInfo) {
	req := rpc.FetchRequest{Namespace: ci.Namespace, Action: ci.Action, Rev: ci.Rev, ContainerID: ci.ContainerID, InvokerID: "i0", Alive: true, Warm: true}
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := c.Fetch(fctx, &req)
		cancel()
		if err != nil {
			return
		}
		switch r.Status {
		case rpc.FetchOK:
			fi.mu.Lock()
			fi.ran[r.Activation.ActivationID] = ci.Action
			fi.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			req.LastDurationMs = 100
		case rpc.FetchEmpty:
		case rpc.FetchRelease:
			fi.released.Add(1)
			bye := req
			bye.Alive = false
			_, _ = c.Fetch(ctx, &bye)
			_ = fi.sess.DeregisterContainer(ctx, ci)
			return
		default:
			return
		}
	}
}

func (fi *fakeInvoker) hasRun(id whisk.ActivationID) bool {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	_, ok := fi.ran[id]
	return ok
}

// publishFor sends an activation of act with the namespace limit, as a
// controller does.
func (e *env) publishFor(act whisk.ActionMeta, id string, nsLimit int) whisk.ActivationID {
	e.t.Helper()
	topic := whisk.ActionTopic(act.FQN())
	if err := e.bus.EnsureTopic(e.ctx, topic); err != nil {
		e.t.Fatal(err)
	}
	aid := whisk.ActivationID(strings.Repeat("0", 32-len(id)) + id)
	b, _ := json.Marshal(whisk.ActivationMessage{
		ActivationID: aid, Action: act, Subject: "guest", Params: json.RawMessage(`{}`),
		ControllerID: "c0", Published: time.Now().UnixMilli(), NamespaceLimit: nsLimit,
	})
	if err := e.bus.Publish(e.ctx, topic, b); err != nil {
		e.t.Fatal(err)
	}
	return aid
}

// TestNamespaceShareAcrossSchedulers: the queues of two actions of one
// namespace live on two schedulers. The flooded action holds the whole
// namespace (limit 2); the second action's activations still run, long
// before the flood drains, because the first gives a container back
// through etcd (demand key, share read), and the namespace limit holds
// throughout.
func TestNamespaceShareAcrossSchedulers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s1 := e.scheduler("s1", scheduler.Config{Park: 300 * time.Millisecond})
	s2 := e.scheduler("s2", scheduler.Config{Park: 300 * time.Millisecond})
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	fi := startFakeInvoker(ctx, t, e, s1, s2)

	hog := whisk.ActionMeta{Namespace: "guest", Name: "hog", Rev: 1, Kind: "python:3", Limits: whisk.Limits{Timeout: 60000, Memory: 256, Concurrency: 1}}
	meek := hog
	meek.Name = "meek"
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hog}); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: meek}); err != nil {
		t.Fatal(err)
	}
	const limit = 2
	var hogIDs []whisk.ActivationID
	for i := range 200 { // 200 × 100 ms on 2 containers: 10 s
		hogIDs = append(hogIDs, e.publishFor(hog, fmt.Sprintf("h%d", i), limit))
	}
	peak := atomic.Int64{}
	go func() {
		for ctx.Err() == nil {
			if n, c, err := e.client.CountNamespace(ctx, "guest"); err == nil {
				peak.Store(max(peak.Load(), int64(n)))
				_ = c
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	e.eventually("hog holds the namespace", func() bool {
		n, err := e.client.CountContainers(e.ctx, hog.FQN(), 1)
		return err == nil && n == limit
	})
	start := time.Now()
	var meekIDs []whisk.ActivationID
	for i := range 3 {
		meekIDs = append(meekIDs, e.publishFor(meek, fmt.Sprintf("m%d", i), limit))
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		all := true
		for _, id := range meekIDs {
			if rec, ok := e.store.get(id); ok {
				t.Fatalf("meek activation %s failed: %d %s", id, rec.StatusCode, rec.Response.Result)
			}
			all = all && fi.hasRun(id)
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("meek's activations did not run within 10 s")
		}
	}
	took := time.Since(start)
	if fi.hasRun(hogIDs[len(hogIDs)-1]) {
		t.Fatal("the flood drained before meek ran: nothing was shared")
	}
	if fi.released.Load() < 1 {
		t.Fatal("no container was given back")
	}
	if p := peak.Load(); p > limit {
		t.Fatalf("the namespace had %d containers, over its limit %d", p, limit)
	}
	for _, id := range meekIDs {
		if _, ok := e.store.get(id); ok {
			t.Fatalf("meek activation %s has a failure record", id)
		}
	}
	t.Logf("meek ran 3 activations %v after they arrived; %d container(s) given back", took, fi.released.Load())
}
