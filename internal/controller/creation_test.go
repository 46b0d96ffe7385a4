package controller

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/cluster/clustertest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// hookedCluster is the real cluster client with test hooks: deletions
// receives every leader deletion after the controller applied it; around
// (if set) wraps Leader reads; noScheds makes Schedulers answer none, and
// schedCalls counts Schedulers calls.
type hookedCluster struct {
	*cluster.Client
	deletions  chan whisk.FQN
	around     func(ctx context.Context, f whisk.FQN, read func() (whisk.LeaderInfo, bool, error)) (whisk.LeaderInfo, bool, error)
	noScheds   atomic.Bool
	schedCalls atomic.Int32
}

func newHooked(c *cluster.Client) *hookedCluster {
	return &hookedCluster{Client: c, deletions: make(chan whisk.FQN, 64)}
}

func (h *hookedCluster) Leader(ctx context.Context, f whisk.FQN) (whisk.LeaderInfo, bool, error) {
	read := func() (whisk.LeaderInfo, bool, error) { return h.Client.Leader(ctx, f) }
	if h.around != nil {
		return h.around(ctx, f, read)
	}
	return read()
}

func (h *hookedCluster) Schedulers(ctx context.Context) ([]whisk.SchedulerInfo, error) {
	h.schedCalls.Add(1)
	if h.noScheds.Load() {
		return nil, nil
	}
	return h.Client.Schedulers(ctx)
}

func (h *hookedCluster) WatchLeaders(ctx context.Context, fn func(whisk.FQN, whisk.LeaderInfo, bool)) error {
	return h.Client.WatchLeaders(ctx, func(f whisk.FQN, li whisk.LeaderInfo, deleted bool) {
		fn(f, li, deleted)
		if deleted {
			select {
			case h.deletions <- f:
			default:
			}
		}
	})
}

// awaitDeletion waits until the controller applied the deletion of f's leader.
func (h *hookedCluster) awaitDeletion(ctx context.Context, f whisk.FQN) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		select {
		case got := <-h.deletions:
			if got == f {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// etcdEnv is one embedded etcd with a client and a scheduler session that
// registered scheduler "s1".
type etcdEnv struct {
	client *cluster.Client
	sess   *cluster.Session
}

func startEtcd(t *testing.T) *etcdEnv {
	t.Helper()
	etcd := clustertest.StartTestCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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
	// Keep the lease alive however long the test runs.
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = sess.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-ran })
	if err := sess.RegisterScheduler(ctx, whisk.SchedulerInfo{ID: "s1", Addr: "s1:1"}); err != nil {
		t.Fatal(err)
	}
	return &etcdEnv{client: client, sess: sess}
}

func (e *etcdEnv) elect(ctx context.Context, meta whisk.ActionMeta, li whisk.LeaderInfo) error {
	_, _, err := e.sess.ElectLeader(ctx, meta.FQN(), li)
	return err
}

// watchLive waits until the rig's leader watch delivers events, by
// electing and resigning a leader of a throwaway action.
func (e *etcdEnv) watchLive(t *testing.T, h *hookedCluster) {
	t.Helper()
	ctx := context.Background()
	f := whisk.FQN{Namespace: "guest", Name: "warmup-" + t.Name()}
	if _, _, err := e.sess.ElectLeader(ctx, f, whisk.LeaderInfo{SchedulerID: "w", Addr: "w:1"}); err != nil {
		t.Fatal(err)
	}
	if err := e.sess.ResignLeader(ctx, f); err != nil {
		t.Fatal(err)
	}
	if err := h.awaitDeletion(ctx, f); err != nil {
		t.Fatalf("leader watch not live: %v", err)
	}
}

// cachedLeader is the controller's cached leader of f and whether a
// creation of f is running.
func cachedLeader(c *Controller, f whisk.FQN) (whisk.LeaderInfo, bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	li, ok := c.leaders[f]
	return li, ok, c.creating[f] != nil
}

// waitLeaderSettled waits until the controller caches f's leader with no
// creation running, and checks that etcd agrees.
func waitLeaderSettled(t *testing.T, c *Controller, client *cluster.Client, f whisk.FQN) {
	t.Helper()
	waitFor(t, "leader cached, creation ended", func() bool {
		_, ok, creating := cachedLeader(c, f)
		return ok && !creating
	})
	li, _, _ := cachedLeader(c, f)
	cur, ok, err := client.Leader(context.Background(), f)
	if err != nil || !ok || cur != li {
		t.Fatalf("cached leader %+v, etcd has %+v (present %v, err %v)", li, cur, ok, err)
	}
}

func publishCompletion(t *testing.T, r *rig, id whisk.ActivationID, name string) {
	t.Helper()
	rec := whisk.Activation{Namespace: "guest", Name: name, ActivationID: id,
		Response: whisk.NewResponse(whisk.StatusSuccess, raw(`{"late":true}`))}
	b, _ := json.Marshal(whisk.Completion{Activation: rec, InvokerID: "i0"})
	if err := r.bus.Publish(context.Background(), whisk.CompletionTopic(r.c.cfg.ID), b); err != nil {
		t.Fatal(err)
	}
}

// TestStaleLeaderNotCached: a leader read by a creation (from etcd, or in a
// CreateQueue answer) whose key's deletion the watch applied before the
// read was cached must not be cached; the controller reads or creates again.
func TestStaleLeaderNotCached(t *testing.T) {
	env := startEtcd(t)
	ctx := context.Background()

	t.Run("CreateQueueAnswer", func(t *testing.T) {
		h := newHooked(env.client)
		// The first CreateQueue elects, then the leader vanishes and the
		// watch applies that before the answer arrives.
		s1 := &fakeScheduler{id: "s1", electN: func(ctx context.Context, n int32, meta whisk.ActionMeta, li whisk.LeaderInfo) error {
			if err := env.elect(ctx, meta, li); err != nil {
				return err
			}
			if n > 1 {
				return nil
			}
			if err := env.sess.ResignLeader(ctx, meta.FQN()); err != nil {
				return err
			}
			return h.awaitDeletion(ctx, meta.FQN())
		}}
		d := &dialer{scheds: map[string]*fakeScheduler{"s1:1": s1}}
		r := newRig(t, "stale-answer", h, d, whisk.DefaultSystemLimits())
		r.run(t)
		env.watchLive(t, h)
		act := action("stale-answer", nil, nil)
		if _, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: act}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "CreateQueue asked again", func() bool { return s1.calls.Load() >= 2 })
		waitLeaderSettled(t, r.c, env.client, act.FQN())
		if n := s1.calls.Load(); n != 2 {
			t.Fatalf("CreateQueue called %d times, want 2", n)
		}
	})

	t.Run("EtcdRead", func(t *testing.T) {
		h := newHooked(env.client)
		var reads atomic.Int32
		// The first read finds a leader that vanishes, and whose deletion
		// the watch applies, before the read returns.
		h.around = func(ctx context.Context, f whisk.FQN, read func() (whisk.LeaderInfo, bool, error)) (whisk.LeaderInfo, bool, error) {
			if reads.Add(1) > 1 {
				return read()
			}
			if _, _, err := env.sess.ElectLeader(ctx, f, whisk.LeaderInfo{SchedulerID: "old", Addr: "old:1"}); err != nil {
				return whisk.LeaderInfo{}, false, err
			}
			li, ok, err := read()
			if err := env.sess.ResignLeader(ctx, f); err != nil {
				t.Error(err)
			}
			if err := h.awaitDeletion(ctx, f); err != nil {
				t.Error(err)
			}
			return li, ok, err
		}
		s1 := &fakeScheduler{id: "s1", elect: env.elect}
		d := &dialer{scheds: map[string]*fakeScheduler{"s1:1": s1}}
		r := newRig(t, "stale-read", h, d, whisk.DefaultSystemLimits())
		r.run(t)
		env.watchLive(t, h)
		act := action("stale-read", nil, nil)
		if _, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: act}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "queue created after the stale read", func() bool { return s1.calls.Load() >= 1 })
		waitLeaderSettled(t, r.c, env.client, act.FQN())
		if li, _, _ := cachedLeader(r.c, act.FQN()); li.SchedulerID != "s1" {
			t.Fatalf("cached %+v, want s1", li)
		}
	})
}

// TestDeletionAfterCacheHitNotStranded races invocations that hit the
// leader cache against the deletion of that leader: whichever comes first,
// the published activation must end up with a queue (the deletion sees the
// flight, or the invocation sees no leader).
func TestDeletionAfterCacheHitNotStranded(t *testing.T) {
	s1 := &fakeScheduler{id: "s1"}
	cl := &fakeCluster{scheds: []whisk.SchedulerInfo{{ID: "s1", Addr: "s1:1"}}}
	d := &dialer{scheds: map[string]*fakeScheduler{"s1:1": s1}}
	limits := whisk.DefaultSystemLimits()
	limits.InvocationsPerMinute = 0 // unlimited
	r := newRig(t, "c0", cl, d, limits)
	act := action("racy", nil, nil)
	fqn := act.FQN()
	old := whisk.LeaderInfo{SchedulerID: "old", Addr: "old:1"}
	ctx := context.Background()
	for i := range 2000 {
		r.c.mu.Lock()
		for id := range r.c.flights {
			r.c.land(id)
		}
		r.c.mu.Unlock()
		r.c.onLeader(fqn, old, false)

		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			if _, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: act}); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			r.c.onLeader(fqn, old, true)
		}()
		close(start)
		wg.Wait()
		deadline := time.Now().Add(30 * time.Second) // a hang guard
		for {
			li, ok, creating := cachedLeader(r.c, fqn)
			if ok && !creating {
				if li.SchedulerID != "s1" {
					t.Fatalf("iteration %d: cached %+v after the deletion, want a new leader", i, li)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("iteration %d: activation published after the leader vanished, and no queue asked for", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// TestCreationRetriesWhileActivationsWait: when every scheduler fails, the
// controller keeps asking (with backoff) while it has activations of the
// action in flight, so a blocking caller gets its result once a scheduler
// recovers, without another invocation; and it stops once none waits.
func TestCreationRetriesWhileActivationsWait(t *testing.T) {
	env := startEtcd(t)
	ctx := context.Background()

	t.Run("BlockingCallerServedAfterRecovery", func(t *testing.T) {
		s1 := &fakeScheduler{id: "s1", elect: env.elect}
		s1.down.Store(true)
		d := &dialer{scheds: map[string]*fakeScheduler{"s1:1": s1}}
		r := newRig(t, "retry1", env.client, d, whisk.DefaultSystemLimits())
		r.c.retryMin, r.c.retryMax = 5*time.Millisecond, 20*time.Millisecond
		r.run(t)
		act := action("retry", nil, nil)
		cons := queueConsumer(t, r.bus, act)

		// A pretend queue + invoker: it consumes only once a leader exists.
		go func() {
			for {
				if _, ok, err := env.client.Leader(ctx, act.FQN()); err == nil && ok {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			m := nextMessage(t, cons)
			publishCompletion(t, r, m.ActivationID, act.Name)
		}()
		type out struct {
			res Result
			err error
		}
		done := make(chan out, 1)
		go func() {
			res, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: act, Blocking: true, Wait: 30 * time.Second})
			done <- out{res, err}
		}()
		waitFor(t, "CreateQueue retried", func() bool { return s1.calls.Load() >= 3 })
		s1.down.Store(false)
		select {
		case o := <-done:
			if o.err != nil || o.res.Activation == nil {
				t.Fatalf("got %+v, %v; want the completed activation", o.res, o.err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("blocking caller not served after the scheduler recovered")
		}
		waitLeaderSettled(t, r.c, env.client, act.FQN())
	})

	t.Run("StopsWhenNothingWaits", func(t *testing.T) {
		s1 := &fakeScheduler{id: "s1", elect: env.elect}
		s1.down.Store(true)
		d := &dialer{scheds: map[string]*fakeScheduler{"s1:1": s1}}
		r := newRig(t, "retry2", env.client, d, whisk.DefaultSystemLimits())
		r.c.retryMin, r.c.retryMax = 5*time.Millisecond, 20*time.Millisecond
		clk := &clock{t: time.Now()}
		r.c.now = clk.Now
		r.run(t)

		// Landed: the completion arrives.
		act := action("landed", nil, nil)
		res, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: act})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "CreateQueue retried", func() bool { return s1.calls.Load() >= 2 })
		publishCompletion(t, r, res.ActivationID, act.Name)
		waitFor(t, "creation given up", func() bool { _, _, c := cachedLeader(r.c, act.FQN()); return !c })
		n := s1.calls.Load()
		time.Sleep(100 * time.Millisecond)
		if s1.calls.Load() != n {
			t.Fatalf("CreateQueue still called after the activation completed")
		}

		// Expired: the flight outlives its slot.
		act = action("expired", nil, nil)
		if _, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: act}); err != nil {
			t.Fatal(err)
		}
		n = s1.calls.Load()
		waitFor(t, "CreateQueue retried", func() bool { return s1.calls.Load() >= n+2 })
		clk.Add(time.Hour)
		waitFor(t, "creation given up", func() bool { _, _, c := cachedLeader(r.c, act.FQN()); return !c })
		n = s1.calls.Load()
		time.Sleep(100 * time.Millisecond)
		if s1.calls.Load() != n {
			t.Fatalf("CreateQueue still called after the flight expired")
		}
	})

	t.Run("LeaderVanishedWhileSchedulersFail", func(t *testing.T) {
		h := newHooked(env.client)
		s1 := &fakeScheduler{id: "s1", elect: env.elect}
		d := &dialer{scheds: map[string]*fakeScheduler{"s1:1": s1}}
		r := newRig(t, "retry3", h, d, whisk.DefaultSystemLimits())
		r.c.retryMin, r.c.retryMax = 5*time.Millisecond, 20*time.Millisecond
		r.run(t)
		act := action("vanish", nil, nil)
		if _, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: act}); err != nil {
			t.Fatal(err)
		}
		waitLeaderSettled(t, r.c, env.client, act.FQN())

		// The scheduler fails: the recreation keeps asking.
		s1.down.Store(true)
		if err := env.sess.ResignLeader(ctx, act.FQN()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "recreation retried", func() bool { return s1.calls.Load() >= 4 })
		s1.down.Store(false)
		waitLeaderSettled(t, r.c, env.client, act.FQN())

		// No scheduler is registered at all for a while: same.
		h.noScheds.Store(true)
		calls, lists := s1.calls.Load(), h.schedCalls.Load()
		if err := env.sess.ResignLeader(ctx, act.FQN()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "scheduler list retried", func() bool { return h.schedCalls.Load() >= lists+3 })
		h.noScheds.Store(false)
		waitFor(t, "queue recreated", func() bool { return s1.calls.Load() > calls })
		waitLeaderSettled(t, r.c, env.client, act.FQN())
	})
}

// heldStore is a fakeStore whose GetActivation signals reading and then
// waits for release.
type heldStore struct {
	fakeStore
	reading chan struct{}
	release chan struct{}
}

func (s *heldStore) GetActivation(ctx context.Context, ns string, id whisk.ActivationID) (whisk.Activation, error) {
	s.reading <- struct{}{}
	<-s.release
	return s.fakeStore.GetActivation(ctx, ns, id)
}

// TestTimedOutWaiterForgotten: a blocking call that times out removes its
// waiter at once (before the store fallback), and a late completion is
// dropped without leaving anything behind.
func TestTimedOutWaiterForgotten(t *testing.T) {
	r := newRig(t, "late", nil, nil, whisk.DefaultSystemLimits())
	store := &heldStore{fakeStore: fakeStore{recs: map[whisk.ActivationID]whisk.Activation{}},
		reading: make(chan struct{}), release: make(chan struct{})}
	r.c.deps.Activations = store
	r.run(t)
	act := action("late", nil, nil)
	cons := queueConsumer(t, r.bus, act)

	const n = 5
	results := make(chan Result, n)
	for range n {
		go func() {
			res, err := r.c.Invoke(context.Background(), Request{Identity: guest(), Action: act, Blocking: true, Wait: 50 * time.Millisecond})
			if err != nil {
				t.Error(err)
			}
			results <- res
		}()
	}
	for range n {
		select {
		case <-store.reading:
		case <-time.After(10 * time.Second):
			t.Fatal("no fallback read")
		}
	}
	// Every caller timed out and is reading the store: no waiter is left.
	r.c.mu.Lock()
	waiters := len(r.c.waiters)
	r.c.mu.Unlock()
	if waiters != 0 {
		t.Fatalf("%d waiters left during the fallback read, want 0", waiters)
	}
	close(store.release)
	for range n {
		if res := <-results; res.Activation != nil {
			t.Fatalf("result %+v, want id only", res)
		}
	}

	// The activations complete late: the completions are dropped and the
	// flights land.
	for range n {
		m := nextMessage(t, cons)
		publishCompletion(t, r, m.ActivationID, act.Name)
	}
	waitFor(t, "flights landed", func() bool {
		r.c.mu.Lock()
		defer r.c.mu.Unlock()
		return len(r.c.flights) == 0 && len(r.c.byAction) == 0 && len(r.c.waiters) == 0
	})
}
