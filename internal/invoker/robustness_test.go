package invoker_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/cluster/clustertest"
	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/whisk"
)

const echoNative = "#!/bin/bash\nwhile read -r l; do echo '{\"ok\":true}' >&3; done\n"

// TestShutdownWhileFetchParked: the invoker is told to stop while its
// container's fetch is parked at the scheduler, and the scheduler hands an
// activation to that fetch anyway. The activation must not be lost: it is
// run (or failed) and gets a completion and a record.
func TestShutdownWhileFetchParked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{ShutdownGrace: 10 * time.Second})
	e.stub.mu.Lock()
	e.stub.park, e.stub.handOutAnyway = 3*time.Second, true
	e.stub.mu.Unlock()
	a := e.putAction("parked", "native", echoNative, whisk.Limits{})
	if ack := e.create(a); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	waitFor(t, 5*time.Second, "a fetch parked", func() bool { return e.stub.parked.Load() == 1 })

	e.stop() // SIGTERM; Run goes on shutting down
	time.Sleep(200 * time.Millisecond)
	m := e.enqueue(a, "")

	rec := e.completion(15 * time.Second)
	if rec.ActivationID != m.ActivationID {
		t.Fatalf("completion for %s, want %s", rec.ActivationID, m.ActivationID)
	}
	if !rec.Response.Success {
		t.Errorf("handed out during the shutdown grace, it should have run: %+v %s", rec.Response, rec.Response.Result)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.GetActivation(e.ctx, "guest", m.ActivationID); err != nil {
		t.Errorf("no record stored: %v", err)
	}
}

// failRegister makes the real session's RegisterContainer fail (its
// context has ended), as a write to etcd can; the session still remembers
// the key, as it does for any failed put.
type failRegister struct {
	invoker.Session
	fail atomic.Bool
}

func (f *failRegister) RegisterContainer(ctx context.Context, info whisk.ContainerInfo) error {
	if f.fail.Load() {
		ended, cancel := context.WithCancel(ctx)
		cancel()
		return f.Session.RegisterContainer(ended, info)
	}
	return f.Session.RegisterContainer(ctx, info)
}

// TestRegisterFailureLeavesNoKey: a container whose registration failed is
// removed, and its key must not appear later, when the session re-grants
// its lease and re-puts what it remembers.
func TestRegisterFailureLeavesNoKey(t *testing.T) {
	t.Parallel()
	c := clustertest.StartTestCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client, err := cluster.Dial(ctx, c.Endpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	fr := &failRegister{}
	fr.fail.Store(true)
	e := newEnvWith(t, invoker.Config{}, client, envWrap{session: func(s invoker.Session) invoker.Session {
		fr.Session = s
		return fr
	}})
	defer e.shutdown() // before the etcd client closes

	a := e.putAction("unregistered", "native", echoNative, whisk.Limits{})
	ack := e.create(a)
	if !strings.Contains(ack.Error, "cannot register") || !ack.Retryable || ack.Developer {
		t.Fatalf("ack %+v", ack)
	}
	// Generous: the removal (SIGTERM, kill by uid, /proc scan) is slow on a
	// loaded machine (ci8 timed out at 10 s while other suites ran).
	waitFor(t, 30*time.Second, "the container removed", func() bool { return e.inv.FreeMemoryMB() == 2048 })

	// Lose the lease: the session re-grants and re-puts what it remembers.
	raw, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	leases, err := raw.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases.Leases {
		if _, err := raw.Revoke(ctx, l.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := e.invokerInfo(); ok {
		t.Fatal("the invoker's key survived the revoke")
	}
	waitFor(t, 15*time.Second, "the session's keys restored", func() bool {
		_, ok := e.invokerInfo()
		return ok
	})
	if n := e.containers(a); n != 0 {
		t.Fatalf("%d container keys after the re-grant, want 0: the removed container came back", n)
	}
}

// slowCreate holds back the creation of one action's containers until
// released, like a slow image pull.
type slowCreate struct {
	container.Backend
	action  string
	started chan struct{}
	release chan struct{}
}

func (s *slowCreate) Create(ctx context.Context, spec container.Spec) (container.Container, error) {
	if spec.Labels["eddy.action"] == s.action {
		s.started <- struct{}{}
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Backend.Create(ctx, spec)
}

// TestSlowCreationDoesNotBlockOthers: a creation request polled after a
// slow one is served at once, not after it.
func TestSlowCreationDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	slow := &slowCreate{action: "slowpull", started: make(chan struct{}, 10), release: make(chan struct{})}
	e := newEnvWith(t, invoker.Config{}, etcd, envWrap{backend: func(b container.Backend) container.Backend {
		slow.Backend = b
		return slow
	}})
	released := false
	release := func() {
		if !released {
			released = true
			close(slow.release)
		}
	}
	defer release()
	s := e.putAction("slowpull", "native", echoNative, whisk.Limits{})
	f := e.putAction("fast", "native", echoNative, whisk.Limits{})
	e.requestCreation(s, "cr-slow")
	select {
	case <-slow.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow creation never started")
	}
	e.requestCreation(f, "cr-fast")
	var ack whisk.CreationAck
	e.next(e.acks, &ack, 10*time.Second)
	if ack.CreationID != "cr-fast" || ack.Error != "" {
		t.Fatalf("first ack %+v, want the fast creation's success", ack)
	}
	release()
	ack = e.nextAck()
	if ack.CreationID != "cr-slow" || ack.Error != "" {
		t.Fatalf("second ack %+v, want the slow creation's success", ack)
	}
	if rec := e.invoke(f, ""); !rec.Response.Success {
		t.Fatalf("%+v", rec.Response)
	}
}

// chattyPy starts, on its first activation, a thread that writes a line
// every millisecond for ever: between activations nobody asked for its
// output.
const chattyPy = `import threading, time, sys
started = False
def chatter():
    i = 0
    while True:
        print("background %d" % i, flush=True)
        i += 1
        time.sleep(0.001)
def main(args):
    global started
    if not started:
        started = True
        threading.Thread(target=chatter, daemon=True).start()
    print("in main", flush=True)
    return {"ok": True}
`

// TestOutputBetweenActivationsIsDropped: a container that writes between
// activations is read all the time (it never blocks on its output), and
// what it wrote between activations is attributed to none: every log line
// of an activation was written during it.
func TestOutputBetweenActivationsIsDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{})
	a := e.putAction("chatty-bg", "python:3.11", chattyPy, whisk.Limits{})
	e.create(a)
	if rec := e.invoke(a, ""); !rec.Response.Success {
		t.Fatalf("%+v %s", rec.Response, rec.Response.Result)
	}
	for round := range 2 {
		time.Sleep(time.Second) // the thread writes ~1000 lines meanwhile
		rec := e.invoke(a, "")
		if !rec.Response.Success {
			t.Fatalf("round %d: %+v %s", round, rec.Response, rec.Response.Result)
		}
		inMain := false
		for _, l := range rec.Logs {
			inMain = inMain || strings.HasSuffix(l, "stdout: in main")
			ts, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(l[:30]))
			if err != nil {
				t.Fatalf("round %d: log line %q: %v", round, l, err)
			}
			if early := time.UnixMilli(rec.Start).Sub(ts); early > 100*time.Millisecond {
				t.Fatalf("round %d: line %q written %v before the activation began (%d lines)", round, l, early, len(rec.Logs))
			}
		}
		if !inMain || rec.Logs[len(rec.Logs)-1] == whisk.MsgLogsMaybeGone {
			t.Errorf("round %d: logs %q", round, rec.Logs)
		}
	}
}
