package events

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/queue"
	"github.com/eddy-faas/eddy/internal/store/sqlite"
	"github.com/eddy-faas/eddy/internal/testenv"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// busInvoker publishes each invocation to its action's topic as the
// controller's invoke path does: with the request's activation id (else a
// new one), marked Repeat when the request names its id.
type busInvoker struct {
	b     *memory.Bus
	calls atomic.Int64
}

func (i *busInvoker) Invoke(ctx context.Context, req controller.Request) (controller.Result, error) {
	i.calls.Add(1)
	id := req.ActivationID
	if id == "" {
		id = whisk.NewActivationID()
	}
	msg := whisk.ActivationMessage{ActivationID: id, TransactionID: req.TransactionID, Action: req.Action.Meta(),
		Subject: req.Identity.Subject, Params: req.Params, ControllerID: "c0", Published: time.Now().UnixMilli(),
		Repeat: req.ActivationID != ""}
	b, err := msg.AppendJSON(nil)
	if err != nil {
		return controller.Result{}, err
	}
	topic := whisk.ActionTopic(req.Action.FQN())
	if err := i.b.EnsureTopic(ctx, topic); err != nil {
		return controller.Result{}, err
	}
	return controller.Result{ActivationID: id}, i.b.Publish(ctx, topic, b)
}

// dyingRecords is the store with a fault: while die is set, trigger
// records are not written (the firing process died after publishing the
// rule activations, before its record).
type dyingRecords struct {
	*sqlite.Store
	die atomic.Bool
}

func (r *dyingRecords) PutActivation(ctx context.Context, a whisk.Activation) error {
	if r.die.Load() && a.Name == "t" {
		return errors.New("killed before the trigger record")
	}
	return r.Store.PutActivation(ctx, a)
}

// runner is a container of the action: it fetches from one queue, counts
// the runs of each activation id and writes each one's record.
type runner struct {
	mu   sync.Mutex
	runs map[whisk.ActivationID]int
}

func (r *runner) count(id whisk.ActivationID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[id]
}

func (r *runner) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.runs {
		n += c
	}
	return n
}

// serve runs a queue on the action's topic and a container fetching from
// it until the returned stop is called.
func (r *runner) serve(t *testing.T, b *memory.Bus, st *sqlite.Store, meta whisk.ActionMeta) (stop func()) {
	t.Helper()
	topic := whisk.ActionTopic(meta.FQN())
	if err := b.EnsureTopic(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	q, err := queue.New(queue.Config{Action: meta, NamespaceLimit: 10, DedupSkew: time.Nanosecond}, queue.Deps{
		Now:             time.Now,
		Subscribe:       func(ctx context.Context) (bus.Consumer, error) { return b.Subscribe(ctx, topic, "queue") },
		CountContainers: func(context.Context, int64) (int, error) { return 1, nil },
		CountNamespace:  func(context.Context) (int, int, error) { return 1, 0, nil },
		Create:          func(queue.CreateRequest) {},
		Fail:            func(context.Context, whisk.ActivationMessage, whisk.Activation) error { return nil },
		Recorded: func(ctx context.Context, msgs []whisk.ActivationMessage) (map[whisk.ActivationID]bool, error) {
			out := map[whisk.ActivationID]bool{}
			for _, m := range msgs {
				_, err := st.GetActivation(ctx, m.RecordNamespace(), m.ActivationID)
				out[m.ActivationID] = err == nil
			}
			return out, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = q.Run(ctx) }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			res, err := q.Fetch(ctx, &whisk.FetchRequest{Namespace: meta.Namespace, Action: meta.Name, Rev: meta.Rev,
				ContainerID: "c1", InvokerID: "i0", Alive: true, Warm: true})
			if err != nil || res.Status != whisk.FetchOK {
				continue
			}
			m := res.Activation
			r.mu.Lock()
			r.runs[m.ActivationID]++
			r.mu.Unlock()
			now := time.Now().UnixMilli()
			_ = st.PutActivation(context.WithoutCancel(ctx), whisk.Activation{Namespace: m.RecordNamespace(), Name: m.Action.Name,
				Subject: m.Subject, ActivationID: m.ActivationID, Start: now, End: now,
				Response: whisk.NewResponse(whisk.StatusSuccess, []byte(`{}`))})
		}
	}()
	return func() {
		q.Stop()
		<-q.Done()
		cancel()
		<-done
	}
}

// TestRepeatedFireRunsOnce fires the same trigger activation id twice, as
// an alarm's next owner does when the previous one died between
// publishing the rule activations and writing the trigger record: the
// second fire publishes the rule activations again, with the same ids,
// and the queue runs each at most once, whether the first copies ran on
// the same queue or on a queue that has gone since. A fire whose record
// exists invokes nothing.
func TestRepeatedFireRunsOnce(t *testing.T) {
	svc, st := newService(t)
	ctx := context.Background()
	if _, err := svc.PutTrigger(ctx, "guest", "t", TriggerPut{}, false); err != nil {
		t.Fatal(err)
	}
	rules := []string{"r1", "r2"}
	for _, r := range rules {
		if _, err := svc.PutRule(ctx, guest, r, RulePut{Trigger: ref("/_/t"), Action: ref("/_/a")}, false); err != nil {
			t.Fatal(err)
		}
	}
	a, err := st.GetAction(ctx, "guest", "a")
	if err != nil {
		t.Fatal(err)
	}
	b := memory.New(nil)
	t.Cleanup(func() { _ = b.Close() })
	inv := &busInvoker{b: b}
	recs := &dyingRecords{Store: st}
	f := NewFirer(whisk.SystemLimits{}, FirerDeps{Triggers: svc, Records: recs,
		Actions: svc.actions, Invoker: inv})
	run := &runner{runs: map[whisk.ActivationID]int{}}

	tick := time.Now()
	fire := func(id whisk.ActivationID, die bool) {
		t.Helper()
		recs.die.Store(die)
		got, err := f.Fire(ctx, guest, "guest", "t", nil, nil, id)
		if err != nil || got != id {
			t.Fatalf("Fire(%s): %s, %v", id, got, err)
		}
	}
	// ran waits until each rule activation of the fire id has run.
	ran := func(id whisk.ActivationID) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, "the rule activations of "+string(id)+" to run", func() bool {
			for _, r := range rules {
				if run.count(id.Child("guest/"+r)) == 0 {
					return false
				}
			}
			return true
		})
	}
	once := func(ids ...whisk.ActivationID) {
		t.Helper()
		for _, id := range ids {
			for _, r := range rules {
				if n := run.count(id.Child("guest/" + r)); n != 1 {
					t.Errorf("rule %s of fire %s ran %d times, want 1", r, id, n)
				}
			}
		}
	}

	stop := run.serve(t, b, st, a.Meta())
	// The first copies ran on this queue when the fire comes again.
	id1 := whisk.DerivedActivationID(tick, "tick 1")
	fire(id1, true)
	ran(id1)
	fire(id1, false)
	marker := whisk.DerivedActivationID(tick, "marker 1")
	fire(marker, false)
	ran(marker) // the topic is in order: the second copies were consumed before
	once(id1, marker)

	// A fire whose record exists invokes nothing.
	calls := inv.calls.Load()
	fire(id1, false)
	if n := inv.calls.Load(); n != calls {
		t.Fatalf("a recorded fire invoked %d rule actions", n-calls)
	}

	// The first copies ran on a queue that is gone (a new leader took
	// over) when the fire comes again, after the new queue got the topic.
	id2 := whisk.DerivedActivationID(tick.Add(time.Second), "tick 2")
	fire(id2, true)
	ran(id2)
	stop()
	stop = run.serve(t, b, st, a.Meta())
	defer stop()
	started := whisk.DerivedActivationID(tick, "marker 2")
	fire(started, false)
	ran(started)
	fire(id2, false)
	last := whisk.DerivedActivationID(tick, "marker 3")
	fire(last, false)
	ran(last)
	once(id1, id2, started, last)
	if n, want := run.total(), 5*len(rules); n != want {
		t.Fatalf("%d runs, want %d", n, want)
	}
	if tr, err := st.GetActivation(ctx, "guest", id2); err != nil || len(tr.Logs) != len(rules) {
		t.Fatalf("trigger record of the repeated fire: %+v, %v", tr, err)
	}
}
