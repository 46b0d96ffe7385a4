package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eddy-faas/eddy/internal/whisk"
)

func container(ns, action string, rev int64, iid, cid string) whisk.ContainerInfo {
	return whisk.ContainerInfo{Namespace: ns, Action: action, Rev: rev, InvokerID: iid, ContainerID: cid, MemoryMB: 256}
}

func creation(ns, action string, rev int64, sid, id string) whisk.CreationInfo {
	return whisk.CreationInfo{Namespace: ns, Action: action, Rev: rev, SchedulerID: sid, CreationID: id, InvokerID: "i0"}
}

func TestRegisterAndCount(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	c := dial(t, e.Endpoints())
	s, _ := newSession(t, c, 5*time.Second)
	ctx := ctxT(t)

	hello := whisk.FQN{Namespace: "a", Name: "hello"}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.RegisterScheduler(ctx, whisk.SchedulerInfo{ID: "s0", Addr: "127.0.0.1:1", Queues: 3}))
	must(s.RegisterScheduler(ctx, whisk.SchedulerInfo{ID: "s0", Addr: "127.0.0.1:1", Queues: 4})) // update
	must(s.RegisterInvoker(ctx, whisk.InvokerInfo{ID: "i0", Status: whisk.InvokerUp, UserMemory: 1024, FreeMemory: 512}))
	for _, ci := range []whisk.ContainerInfo{
		container("a", "hello", 1, "i0", "c1"),
		container("a", "hello", 1, "i/0", "c2"), // escaped invoker id
		container("a", "hello", 10, "i0", "c3"), // rev 10 is not rev 1
		container("a", "hello world", 1, "i0", "c4"),
		container("a/hello", "x", 1, "i0", "c5"), // namespace "a/hello" is not "a"
		container("ab", "hello", 1, "i0", "c6"),
	} {
		must(s.RegisterContainer(ctx, ci))
	}
	must(putCreation(ctx, s, creation("a", "hello", 1, "s0", "k1")))
	must(putCreation(ctx, s, creation("a", "hello", 1, "s/1", "k2")))
	must(putCreation(ctx, s, creation("a/hello", "x", 1, "s0", "k3")))

	count := func(f whisk.FQN, rev int64) (int, int) {
		t.Helper()
		n, err := c.CountContainers(ctx, f, rev)
		must(err)
		m, err := c.CountCreations(ctx, f, rev)
		must(err)
		return n, m
	}
	if n, m := count(hello, 1); n != 2 || m != 2 {
		t.Errorf("a/hello@1: %d containers, %d creations; want 2, 2", n, m)
	}
	if n, m := count(hello, 10); n != 1 || m != 0 {
		t.Errorf("a/hello@10: %d containers, %d creations; want 1, 0", n, m)
	}
	if n, m := count(whisk.FQN{Namespace: "a/hello", Name: "x"}, 1); n != 1 || m != 1 {
		t.Errorf("(a/hello)/x@1: %d containers, %d creations; want 1, 1", n, m)
	}
	if n, m, err := c.CountNamespace(ctx, "a"); err != nil || n != 4 || m != 2 {
		t.Errorf("CountNamespace(a) = %d, %d, %v; want 4, 2", n, m, err)
	}
	cs, err := c.Containers(ctx, hello)
	must(err)
	if len(cs) != 3 {
		t.Errorf("Containers(a/hello) = %v, want 3 (both revisions)", cs)
	}
	for _, ci := range cs {
		if ci.FQN() != hello || ci.MemoryMB != 256 {
			t.Errorf("Containers(a/hello) returned %+v", ci)
		}
	}
	scheds, err := c.Schedulers(ctx)
	must(err)
	if len(scheds) != 1 || scheds[0].Queues != 4 {
		t.Errorf("Schedulers = %+v, want s0 with 4 queues", scheds)
	}
	invs, err := c.Invokers(ctx)
	must(err)
	if len(invs) != 1 || invs[0].FreeMemory != 512 {
		t.Errorf("Invokers = %+v", invs)
	}

	must(s.DeregisterContainer(ctx, container("a", "hello", 1, "i/0", "c2")))
	must(s.DeleteCreation(ctx, creation("a", "hello", 1, "s/1", "k2")))
	if n, m := count(hello, 1); n != 1 || m != 1 {
		t.Errorf("after deregistering: %d containers, %d creations; want 1, 1", n, m)
	}

	// Close revokes the lease: every key goes at once.
	must(s.Close(ctx))
	if n, m, err := c.CountNamespace(ctx, "a"); err != nil || n != 0 || m != 0 {
		t.Errorf("after Close: CountNamespace(a) = %d, %d, %v; want 0, 0", n, m, err)
	}
	if scheds, _ := c.Schedulers(ctx); len(scheds) != 0 {
		t.Errorf("after Close: schedulers %+v", scheds)
	}
	if err := s.RegisterContainer(ctx, container("a", "hello", 1, "i0", "c9")); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("RegisterContainer after Close: %v, want ErrSessionClosed", err)
	}
}

func TestElectLeader(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	c := dial(t, e.Endpoints())
	a, _ := newSession(t, dial(t, e.Endpoints()), 5*time.Second)
	b, _ := newSession(t, dial(t, e.Endpoints()), 5*time.Second)
	ctx := ctxT(t)
	f := whisk.FQN{Namespace: "guest", Name: "pkg/hello"}
	la := whisk.LeaderInfo{SchedulerID: "sa", Addr: "127.0.0.1:1"}
	lb := whisk.LeaderInfo{SchedulerID: "sb", Addr: "127.0.0.1:2"}

	if _, ok, err := c.Leader(ctx, f); err != nil || ok {
		t.Fatalf("Leader before election: %v, %v", ok, err)
	}
	won, cur, err := a.ElectLeader(ctx, f, la)
	if err != nil || !won || cur != la {
		t.Fatalf("a.ElectLeader = %v, %+v, %v; want won", won, cur, err)
	}
	won, cur, err = b.ElectLeader(ctx, f, lb)
	if err != nil || won || cur != la {
		t.Fatalf("b.ElectLeader = %v, %+v, %v; want lost to a", won, cur, err)
	}
	if won, cur, err = a.ElectLeader(ctx, f, la); err != nil || !won || cur != la {
		t.Fatalf("a.ElectLeader again = %v, %+v, %v; want won (it holds the key)", won, cur, err)
	}
	// b cannot resign a's leadership.
	if err := b.ResignLeader(ctx, f); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := c.Leader(ctx, f); err != nil || !ok || got != la {
		t.Fatalf("Leader after b resigned = %+v, %v, %v; want a", got, ok, err)
	}

	// a's process ends: its lease is revoked and b wins.
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Leader(ctx, f); ok {
		t.Fatal("leader key survived a.Close")
	}
	if won, cur, err = b.ElectLeader(ctx, f, lb); err != nil || !won || cur != lb {
		t.Fatalf("b.ElectLeader after a closed = %v, %+v, %v; want won", won, cur, err)
	}
	if err := b.ResignLeader(ctx, f); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Leader(ctx, f); ok {
		t.Fatal("leader key survived b.ResignLeader")
	}
}

// A process that dies stops its keep-alives without revoking anything: its
// keys stay until the lease's TTL has passed, then vanish.
func TestDeadProcessKeysExpire(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	observer := dial(t, e.Endpoints())
	ctx := ctxT(t)

	dying, err := Dial(ctx, e.Endpoints(), testLog())
	if err != nil {
		t.Fatal(err)
	}
	s, stop := newSession(t, dying, 2*time.Second)
	f := whisk.FQN{Namespace: "guest", Name: "hello"}
	if err := s.RegisterContainer(ctx, container("guest", "hello", 1, "i0", "c1")); err != nil {
		t.Fatal(err)
	}
	if won, _, err := s.ElectLeader(ctx, f, whisk.LeaderInfo{SchedulerID: "s0"}); err != nil || !won {
		t.Fatalf("ElectLeader: %v, %v", won, err)
	}
	time.Sleep(2500 * time.Millisecond) // longer than the TTL: keep-alives work
	if n, _ := observer.CountContainers(ctx, f, 1); n != 1 {
		t.Fatalf("container count %d while alive, want 1", n)
	}

	died := time.Now()
	stop()        // no more keep-alives ...
	dying.Close() // ... and the connection is gone; nothing was revoked
	if n, _ := observer.CountContainers(ctx, f, 1); n != 1 {
		t.Fatalf("container key vanished at once (count %d): the lease was revoked, not left to expire", n)
	}
	eventually(t, 6*time.Second, "keys of the dead process still there", func() bool {
		n, _ := observer.CountContainers(ctx, f, 1)
		_, leader, _ := observer.Leader(ctx, f)
		return n == 0 && !leader
	})
	if took := time.Since(died); took < time.Second {
		t.Errorf("keys vanished after %s, before the lease could expire", took)
	}
}

// The lease is revoked under a running session (as after a partition that
// outlasted the TTL): Run re-grants, re-puts what is still registered,
// never what was deregistered meanwhile, and calls the OnRegrant hooks,
// where the scheduler re-elects itself.
func TestLeaseLossRegrant(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	other := dial(t, e.Endpoints())
	c := dial(t, e.Endpoints())
	s, _ := newSession(t, c, 2*time.Second)
	ctx := ctxT(t)
	f := whisk.FQN{Namespace: "guest", Name: "hello"}
	li := whisk.LeaderInfo{SchedulerID: "s0", Addr: "127.0.0.1:1"}

	type elected struct {
		won bool
		err error
	}
	hook := make(chan elected, 10)
	s.OnRegrant(func(ctx context.Context) {
		won, _, err := s.ElectLeader(ctx, f, li)
		hook <- elected{won, err}
	})

	kept := container("guest", "hello", 1, "i0", "kept")
	dropped := container("guest", "hello", 1, "i0", "dropped")
	for _, ci := range []whisk.ContainerInfo{kept, dropped} {
		if err := s.RegisterContainer(ctx, ci); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RegisterScheduler(ctx, whisk.SchedulerInfo{ID: "s0", Addr: li.Addr}); err != nil {
		t.Fatal(err)
	}
	if won, _, err := s.ElectLeader(ctx, f, li); err != nil || !won {
		t.Fatalf("ElectLeader: %v, %v", won, err)
	}

	oldLease := s.lease()
	if _, err := other.etcd.Revoke(ctx, oldLease); err != nil {
		t.Fatal(err)
	}
	// Deregistered while the lease is lost: must not come back.
	if err := s.DeregisterContainer(ctx, dropped); err != nil {
		t.Fatal(err)
	}

	select {
	case got := <-hook:
		if got.err != nil || !got.won {
			t.Fatalf("re-election in the hook: won %v, %v", got.won, got.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnRegrant hook not called after the lease was revoked")
	}
	newLease := s.lease()
	if newLease == oldLease {
		t.Fatal("lease not replaced")
	}

	check := func(when string) {
		t.Helper()
		for key, want := range map[string]bool{
			containerKey(kept):    true,
			containerKey(dropped): false,
			schedulerKey("s0"):    true,
			leaderKey(f):          true,
		} {
			resp, err := other.etcd.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(resp.Kvs) == 1; got != want {
				t.Errorf("%s: key %s present = %v, want %v", when, key, got, want)
				continue
			}
			if want && clientv3.LeaseID(resp.Kvs[0].Lease) != newLease {
				t.Errorf("%s: key %s under lease %x, want the new lease %x", when, key, resp.Kvs[0].Lease, newLease)
			}
		}
	}
	check("after re-grant")
	time.Sleep(3 * time.Second) // more than the TTL: the new lease is kept alive
	check("a TTL later")
	if len(hook) != 0 {
		t.Errorf("hook called %d more times without a lease loss", len(hook))
	}
}

// Registrations and deregistrations racing with repeated lease losses: in
// the end etcd holds exactly the keys still registered.
func TestRegrantNeverResurrects(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	other := dial(t, e.Endpoints())
	s, _ := newSession(t, dial(t, e.Endpoints()), 2*time.Second)
	ctx := ctxT(t)
	var regrants atomic.Int32
	s.OnRegrant(func(context.Context) { regrants.Add(1) })

	const workers, perWorker = 4, 100
	stopRevoking := make(chan struct{})
	revoked := make(chan struct{})
	go func() {
		defer close(revoked)
		for {
			select {
			case <-stopRevoking:
				return
			case <-time.After(150 * time.Millisecond):
			}
			lease := s.lease()
			_, _ = other.etcd.Revoke(ctx, lease)
		}
	}()
	var wg sync.WaitGroup
	want := map[string]bool{}
	var wantMu sync.Mutex
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				ci := container("ns", "act", 1, fmt.Sprintf("i%d", w), fmt.Sprintf("c%d", i))
				if err := s.RegisterContainer(ctx, ci); err != nil {
					t.Errorf("register: %v", err)
					return
				}
				time.Sleep(10 * time.Millisecond)
				if i%2 == 0 {
					if err := s.DeregisterContainer(ctx, ci); err != nil {
						t.Errorf("deregister: %v", err)
						return
					}
				} else {
					wantMu.Lock()
					want[containerKey(ci)] = true
					wantMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(stopRevoking)
	<-revoked
	eventually(t, 30*time.Second, "no lease loss recovered", func() bool { return regrants.Load() > 0 })
	t.Logf("%d re-grants", regrants.Load())

	f := whisk.FQN{Namespace: "ns", Name: "act"}
	stable := func() bool {
		resp, err := other.etcd.Get(ctx, containerRevPrefix(f, 1), clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) != len(want) {
			return false
		}
		for _, kv := range resp.Kvs {
			if !want[string(kv.Key)] {
				t.Fatalf("deregistered key %s resurrected", kv.Key)
			}
		}
		return true
	}
	eventually(t, 30*time.Second, "etcd does not hold exactly the registered keys", stable)
	time.Sleep(2500 * time.Millisecond)
	if !stable() {
		t.Fatal("keys changed after the session settled")
	}
}

// A delete that fails (here: its caller's context already ended) does not
// leave the key behind under the live lease: Run retries it until it goes,
// and a re-grant meanwhile does not re-put it. A key registered again
// after its delete failed is not deleted by the retry.
func TestFailedDeleteRetried(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	other := dial(t, e.Endpoints())
	s, _ := newSession(t, dial(t, e.Endpoints()), 2*time.Second)
	ctx := ctxT(t)
	gone := container("guest", "hello", 1, "i0", "gone")
	back := container("guest", "hello", 1, "i0", "back")
	for _, ci := range []whisk.ContainerInfo{gone, back} {
		if err := s.RegisterContainer(ctx, ci); err != nil {
			t.Fatal(err)
		}
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	for _, ci := range []whisk.ContainerInfo{gone, back} {
		if err := s.DeregisterContainer(ended, ci); err == nil {
			t.Fatal("DeregisterContainer with an ended context succeeded; the test needs it to fail")
		}
	}
	present := func(key string) bool {
		resp, err := other.etcd.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Kvs) == 1
	}
	if !present(containerKey(gone)) {
		t.Fatal("the failed delete removed the key; the test needs it to stay")
	}
	if err := s.RegisterContainer(ctx, back); err != nil { // registered again
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the failed delete never retried: key still under the live lease", func() bool {
		return !present(containerKey(gone))
	})

	// A re-grant does not bring it back; the key registered again stays.
	lease := s.lease()
	if _, err := other.etcd.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "keys not restored after the re-grant", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.lease() != lease && present(containerKey(back))
	})
	time.Sleep(time.Second) // a few keep-alive rounds, each retrying deletes
	if present(containerKey(gone)) {
		t.Error("deleted key re-put by the re-grant")
	}
	if !present(containerKey(back)) {
		t.Error("key registered again after its failed delete was deleted")
	}
}

// The OnRegrant hooks run off the keep-alive loop, with a deadline: a hook
// stuck on etcd for longer than the TTL does not let the new lease expire.
func TestRegrantHookDoesNotStallKeepAlive(t *testing.T) {
	t.Parallel()
	s, other, ci := sessionWithContainer(t)
	ctx := ctxT(t)
	release := make(chan struct{})
	defer close(release)
	entered := make(chan bool, 10)
	s.OnRegrant(func(ctx context.Context) {
		_, deadline := ctx.Deadline()
		entered <- deadline
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
	lease := s.lease()
	if _, err := other.etcd.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	select {
	case deadline := <-entered:
		if !deadline {
			t.Error("the hook's context has no deadline")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnRegrant hook not called")
	}
	time.Sleep(4 * time.Second) // two TTLs with the hook stuck
	resp, err := other.etcd.Get(ctx, containerKey(ci))
	if err != nil {
		t.Fatal(err)
	}
	now := s.lease()
	if len(resp.Kvs) != 1 {
		t.Fatal("the container key vanished while a hook was stuck: the new lease was not kept alive")
	}
	if got := clientv3.LeaseID(resp.Kvs[0].Lease); got != now || now == lease {
		t.Fatalf("key under lease %x, session lease %x, revoked lease %x", got, now, lease)
	}
	if n := len(entered); n != 0 {
		t.Errorf("%d more re-grants while the hook was stuck", n)
	}
}

// A re-grant while the former lease is still alive (keep-alives failed for
// a TTL, then etcd answered again): the leader key stays until the hook has
// re-elected, which moves it to the new lease; only then is the former
// lease revoked. Watchers never see the leader key vanish.
func TestRegrantLeaderKeyHasNoGap(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	other := dial(t, e.Endpoints())
	s, _ := newSession(t, dial(t, e.Endpoints()), 5*time.Second)
	ctx := ctxT(t)
	f := whisk.FQN{Namespace: "guest", Name: "hello"}
	li := whisk.LeaderInfo{SchedulerID: "s0", Addr: "127.0.0.1:1"}
	if won, _, err := s.ElectLeader(ctx, f, li); err != nil || !won {
		t.Fatalf("ElectLeader: %v, %v", won, err)
	}
	oldLease := s.lease()

	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	events := other.etcd.Watch(wctx, leaderKey(f))

	type seen struct {
		presentBefore bool
		won           bool
		err           error
	}
	hook := make(chan seen, 1)
	s.OnRegrant(func(ctx context.Context) {
		resp, err := other.etcd.Get(ctx, leaderKey(f))
		if err != nil {
			hook <- seen{err: err}
			return
		}
		won, _, err := s.ElectLeader(ctx, f, li)
		hook <- seen{presentBefore: len(resp.Kvs) == 1, won: won, err: err}
	})
	if err := s.recover(ctx); err != nil {
		t.Fatal(err)
	}
	var got seen
	select {
	case got = <-hook:
	case <-time.After(10 * time.Second):
		t.Fatal("OnRegrant hook not called")
	}
	if got.err != nil || !got.won || !got.presentBefore {
		t.Fatalf("in the hook: leader key present %v, re-elected %v, %v", got.presentBefore, got.won, got.err)
	}
	newLease := s.lease()
	eventually(t, 30*time.Second, "former lease not revoked after the hooks", func() bool {
		ttl, err := other.etcd.TimeToLive(ctx, oldLease)
		return err == nil && ttl.TTL == -1
	})
	resp, err := other.etcd.Get(ctx, leaderKey(f))
	if err != nil || len(resp.Kvs) != 1 || clientv3.LeaseID(resp.Kvs[0].Lease) != newLease {
		t.Fatalf("leader key after the re-grant: %v, %v; want it under the new lease %x", resp, err, newLease)
	}
	wcancel()
	for wr := range events {
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				t.Errorf("the leader key was deleted during the re-grant (revision %d)", ev.Kv.ModRevision)
			}
		}
	}
}

// putCreation writes a creation key unconditionally.
func putCreation(ctx context.Context, s *Session, info whisk.CreationInfo) error {
	_, err := s.PutCreation(ctx, info, 0)
	return err
}

// A write stuck on etcd holds the session's mutex (while etcd elects a
// leader a put can take the server's request timeout, 7 s): the keep-alive
// goes on meanwhile, so the lease, and every key under it, survives.
func TestStuckWriteDoesNotCostTheLease(t *testing.T) {
	t.Parallel()
	s, other, ci := sessionWithContainer(t)
	ctx := ctxT(t)
	lease := s.lease()
	s.mu.Lock() // what a put waiting for etcd's answer does
	time.Sleep(3 * s.ttl)
	s.mu.Unlock()
	resp, err := other.etcd.Get(ctx, containerKey(ci))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("the container key vanished while a write held the session for %v: the lease was not kept alive", 3*s.ttl)
	}
	if got := clientv3.LeaseID(resp.Kvs[0].Lease); got != lease || s.lease() != lease {
		t.Fatalf("key under lease %x, session lease %x, first lease %x: the lease was lost", got, s.lease(), lease)
	}
}

// sessionWithContainer starts an etcd and a session with a 2 s TTL that
// registered one container; other is a second client of the same etcd.
func sessionWithContainer(t *testing.T) (s *Session, other *Client, ci whisk.ContainerInfo) {
	t.Helper()
	e := startEtcd(t)
	other = dial(t, e.Endpoints())
	s, _ = newSession(t, dial(t, e.Endpoints()), 2*time.Second)
	ci = container("guest", "hello", 1, "i0", "c1")
	if err := s.RegisterContainer(ctxT(t), ci); err != nil {
		t.Fatal(err)
	}
	return s, other, ci
}
