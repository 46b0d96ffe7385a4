package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// The in-flight hand-over and the fencing of stale leaders
// (docs/internals.md, "In-flight hand-over and fencing"), on a real etcd
// and kfake.

// hoEnv is a kenv with an action, its topic, and an invoker i1 holding
// container c1 under the invoker's own lease.
type hoEnv struct {
	*kenv
	act whisk.ActionMeta
	f   whisk.FQN
	ctl interface {
		Publish(context.Context, string, []byte) error
	}
	topic string
	inv   *cluster.Session
	cfg   scheduler.Config
}

func newHandoverEnv(t *testing.T) *hoEnv {
	e := newKafkaEnv(t)
	act := whisk.ActionMeta{Namespace: "guest", Name: "handover", Rev: 1, Kind: "python:3",
		Limits: whisk.Limits{Timeout: 60000, Memory: 256, Concurrency: 1}}
	h := &hoEnv{kenv: e, act: act, f: act.FQN(), topic: whisk.ActionTopic(act.FQN()),
		cfg: scheduler.Config{Followers: 1, HandOver: true, Tick: 20 * time.Millisecond, Park: 300 * time.Millisecond, CreationTimeout: time.Minute}}
	ctl := e.bus(nil)
	h.ctl = ctl
	for _, tp := range []string{h.topic, whisk.InvokerTopic("i1"), whisk.CompletionTopic("c0")} {
		if err := ctl.EnsureTopic(e.ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := cluster.NewSession(e.ctx, e.client, 10*time.Second, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inv.Close(context.Background()) })
	if err := inv.RegisterInvoker(e.ctx, whisk.InvokerInfo{ID: "i1", Status: whisk.InvokerUp, UserMemory: 1 << 20, FreeMemory: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := inv.RegisterContainer(e.ctx, whisk.ContainerInfo{Namespace: h.f.Namespace, Action: h.f.Name, Rev: 1,
		InvokerID: "i1", ContainerID: "c1", MemoryMB: 256}); err != nil {
		t.Fatal(err)
	}
	h.inv = inv
	return h
}

func (h *hoEnv) publish(i int) whisk.ActivationID {
	h.t.Helper()
	id := whisk.ActivationID(fmt.Sprintf("%032x", i))
	b, _ := json.Marshal(whisk.ActivationMessage{ActivationID: id, Action: h.act, Subject: "guest",
		Params: json.RawMessage(`{}`), ControllerID: "c0", Published: time.Now().UnixMilli()})
	if err := h.ctl.Publish(h.ctx, h.topic, b); err != nil {
		h.t.Fatal(err)
	}
	return id
}

// leaders starts s1 (leader) and s2 (its follower).
func (h *hoEnv) leaders() (*proc, *proc) {
	h.t.Helper()
	s1 := h.scheduler("s1", h.cfg)
	s2 := h.scheduler("s2", h.cfg)
	rc := rpc.NewClient(mustDial(h.t, s1.addr))
	if r, err := rc.CreateQueue(h.ctx, &rpc.CreateQueueRequest{Action: h.act}); err != nil || r.Leader.SchedulerID != "s1" {
		h.t.Fatalf("CreateQueue on s1: %+v %v", r, err)
	}
	h.eventually("s2 to follow s1's queue", func() bool {
		ids := h.followers(h.f)
		return len(ids) == 1 && ids[0] == "s2"
	})
	return s1, s2
}

// handedByS1 starts s1 and its follower s2 (leaders), publishes one
// activation and has s1 hand it to container c1 of invoker i1.
func (h *hoEnv) handedByS1() (s1, s2 *proc, x whisk.ActivationID) {
	h.t.Helper()
	s1, s2 = h.leaders()
	x = h.publish(1)
	if got := h.fetchOK(s1.addr, "i1", "c1"); got != x {
		h.t.Fatalf("s1 handed %s, want %s", got, x)
	}
	return s1, s2, x
}

// awaitLeader waits until scheduler id holds the action's leader key.
func (h *hoEnv) awaitLeader(id string) {
	h.t.Helper()
	h.eventually(id+" to lead", func() bool {
		li, ok, err := h.client.Leader(h.ctx, h.f)
		return err == nil && ok && li.SchedulerID == id
	})
}

// fetchFrom fetches once from the scheduler at addr as container cid of
// invoker iid.
func (h *hoEnv) fetchFrom(addr, iid, cid string) (*rpc.FetchResponse, error) {
	rc := rpc.NewClient(mustDial(h.t, addr))
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	return rc.Fetch(ctx, &rpc.FetchRequest{Namespace: h.f.Namespace, Action: h.f.Name, Rev: 1,
		InvokerID: iid, ContainerID: cid, Alive: true, Warm: true})
}

// fetchOK fetches from addr until an activation comes.
func (h *hoEnv) fetchOK(addr, iid, cid string) whisk.ActivationID {
	h.t.Helper()
	var got whisk.ActivationID
	h.eventually("an activation from "+addr, func() bool {
		r, err := h.fetchFrom(addr, iid, cid)
		if err == nil && r.Status == rpc.FetchOK {
			got = r.Activation.ActivationID
			return true
		}
		return false
	})
	return got
}

func (h *hoEnv) handoutKeys() int {
	h.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: h.etcd, DialTimeout: 5 * time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(h.ctx, "eddy/handout/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		h.t.Fatal(err)
	}
	return int(resp.Count)
}

func (h *hoEnv) record(id whisk.ActivationID, status int) {
	now := time.Now().UnixMilli()
	_ = h.store.PutActivation(h.ctx, whisk.Activation{Namespace: h.f.Namespace, Name: h.f.Name,
		ActivationID: id, StatusCode: status, Start: now, End: now})
}

func (h *hoEnv) stored(id whisk.ActivationID) (whisk.Activation, bool) {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	a, ok := h.store.m[id]
	return a, ok
}

// An activation still running when its leader dies is not run again by the
// successor, although the dead leader had not committed it: the successor
// learns it from the hand-out key. Once its record lands the key goes.
func TestHandOverNoRunTwiceAfterLeaderCrash(t *testing.T) {
	t.Parallel()
	h := newHandoverEnv(t)
	s1, s2, x := h.handedByS1()
	s1.crash() // at once: within the commit delay, so x is not committed
	if n := h.handoutKeys(); n != 1 {
		t.Fatalf("%d hand-out keys after the hand-out, want 1", n)
	}
	h.awaitLeader("s2")
	y := h.publish(2)
	// Another container of the same invoker drains s2: it must get y and
	// never x, which still runs in c1.
	if got := h.fetchOK(s2.addr, "i1", "c2"); got != y {
		t.Fatalf("s2 handed %s first, want %s (%s runs in c1 still)", got, y, x)
	}
	for range 3 {
		r, err := h.fetchFrom(s2.addr, "i1", "c2")
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == rpc.FetchOK {
			t.Fatalf("s2 handed %s again", r.Activation.ActivationID)
		}
	}
	// x finishes in c1; its key is deleted once the record is found.
	h.record(x, whisk.StatusSuccess)
	h.record(y, whisk.StatusSuccess)
	h.eventually("x's hand-out key deleted once recorded", func() bool { return h.handoutKeys() <= 1 })
	if a, _ := h.stored(x); a.StatusCode != whisk.StatusSuccess {
		t.Fatalf("x's record %+v, want the container's success", a)
	}
}

// When the leader and the invoker running an activation die together, the
// successor gives it an error record (never silence) and runs it nowhere.
func TestHandOverLeaderAndInvokerDieTogether(t *testing.T) {
	t.Parallel()
	h := newHandoverEnv(t)
	s1, s2, x := h.handedByS1()
	// Let s1 commit x (the worst case: the bus never delivers x again),
	// then kill the invoker (its lease and container key go) and s1.
	time.Sleep(600 * time.Millisecond)
	if err := h.inv.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
	s1.crash()
	h.awaitLeader("s2")
	h.eventually("an error record for x", func() bool { _, ok := h.stored(x); return ok })
	a, _ := h.stored(x)
	if a.StatusCode != whisk.StatusWhiskError {
		t.Fatalf("x's record %+v, want a whisk internal error", a)
	}
	h.eventually("x's hand-out key deleted after its error record", func() bool { return h.handoutKeys() == 0 })
	y := h.publish(2)
	if got := h.fetchOK(s2.addr, "i2", "c9"); got != y {
		t.Fatalf("s2 handed %s, want %s (never %s)", got, y, x)
	}
}

// A leader whose leadership ended behind its back (its key deleted and a
// follower elected, as after a pause longer than its lease) hands out
// nothing more: its hand-out record is refused, its queue ends, and the
// new leader hands the activation out, once.
func TestHandOverStaleLeaderFenced(t *testing.T) {
	t.Parallel()
	h := newHandoverEnv(t)
	s1, s2, a := h.handedByS1()
	h.record(a, whisk.StatusSuccess)
	cli, err := clientv3.New(clientv3.Config{Endpoints: h.etcd, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Delete(h.ctx, "eddy/queue/guest/handover/leader"); err != nil {
		t.Fatal(err)
	}
	h.awaitLeader("s2")
	b := h.publish(2)
	// s1 still consumes the topic (it did not notice): its hand-out is
	// refused.
	for range 3 {
		r, err := h.fetchFrom(s1.addr, "i1", "c1")
		if err == nil && r.Status == rpc.FetchOK {
			t.Fatalf("the stale leader s1 handed %s out", r.Activation.ActivationID)
		}
	}
	if got := h.fetchOK(s2.addr, "i1", "c1"); got != b {
		t.Fatalf("s2 handed %s, want %s", got, b)
	}
}

// fetchSeq fetches once from addr as container cid of invoker i1, with
// fetch number seq and the numbers of earlier fetches that got no answer.
func (h *hoEnv) fetchSeq(addr, cid string, seq uint64, unanswered ...whisk.SeqRange) (*rpc.FetchResponse, error) {
	rc := rpc.NewClient(mustDial(h.t, addr))
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	return rc.Fetch(ctx, &rpc.FetchRequest{Namespace: h.f.Namespace, Action: h.f.Name, Rev: 1,
		InvokerID: "i1", ContainerID: cid, Alive: true, Warm: true, Seq: seq, Unanswered: unanswered})
}

// handedTo fetches from addr as c1 with fetch number seq until an
// activation comes, and returns it.
func (h *hoEnv) handedTo(addr string, seq uint64, unanswered ...whisk.SeqRange) *whisk.ActivationMessage {
	h.t.Helper()
	var got *whisk.ActivationMessage
	h.eventually("an activation from "+addr, func() bool {
		r, err := h.fetchSeq(addr, "c1", seq, unanswered...)
		if err == nil && r.Status == rpc.FetchOK {
			got = r.Activation
			return true
		}
		return false
	})
	return got
}

// handFirst publishes one activation and has the leader at addr hand it
// to c1 on c1's fetch number 1.
func (h *hoEnv) handFirst(addr string) whisk.ActivationID {
	h.t.Helper()
	x := h.publish(1)
	if got := h.handedTo(addr, 1); got.ActivationID != x {
		h.t.Fatalf("%s handed %s, want %s", addr, got.ActivationID, x)
	}
	return x
}

// The leader dies after it recorded a hand-out and before its answer
// reached the container (the container's fetch failed). The successor
// learns that from the container's next fetch and hands the activation
// out again, with its parameters, once; a container whose fetch was
// answered is not handed the same activation again.
func TestHandOverUnansweredFetchRunsOnSuccessor(t *testing.T) {
	t.Parallel()
	h := newHandoverEnv(t)
	s1, s2 := h.leaders()
	// Fetch 1 is answered with x: the container "never got it".
	x := h.handFirst(s1.addr)
	s1.crash()
	h.awaitLeader("s2")
	// Fetches 2-4 failed against the dead s1; fetch 5 goes to s2.
	unanswered := []whisk.SeqRange{{From: 1, To: 4}}
	got := h.handedTo(s2.addr, 5, unanswered...)
	if got.ActivationID != x {
		t.Fatalf("s2 handed %s, want %s again", got.ActivationID, x)
	}
	if string(got.Params) != `{}` {
		t.Fatalf("x handed again with params %q, want the published {}", got.Params)
	}
	// The same report again (fetch 5 was answered) and other containers
	// get nothing more: x runs once.
	for _, c := range []string{"c1", "c2"} {
		r, err := h.fetchSeq(s2.addr, c, 6, unanswered...)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == rpc.FetchOK {
			t.Fatalf("s2 handed %s to %s after x was handed again", r.Activation.ActivationID, c)
		}
	}
}

// On a leader that lives, an answer lost on the way (the container's call
// failed after the queue handed out) is handed out again on the
// container's next fetch, and only then.
func TestUnansweredFetchHandedAgainBySameLeader(t *testing.T) {
	t.Parallel()
	h := newHandoverEnv(t)
	s1, _ := h.leaders()
	x := h.handFirst(s1.addr)
	// Fetch 2 reports nothing unanswered: x reached c1, nothing comes.
	if r, err := h.fetchSeq(s1.addr, "c1", 2); err != nil || r.Status == rpc.FetchOK {
		t.Fatalf("fetch 2: %+v %v, want no activation", r, err)
	}
	// Fetch 3 reports fetch 1 unanswered (as a client whose deadline
	// passed would): x comes again.
	if got := h.handedTo(s1.addr, 3, whisk.SeqRange{From: 1, To: 1}); got.ActivationID != x {
		t.Fatalf("s1 handed %s, want %s again", got.ActivationID, x)
	}
	if r, err := h.fetchSeq(s1.addr, "c1", 4, whisk.SeqRange{From: 1, To: 1}); err != nil || r.Status == rpc.FetchOK {
		t.Fatalf("fetch 4: %+v %v, want no activation", r, err)
	}
}

// A container leaving (its last fetch, Alive false) whose previous call
// was cancelled as the queue answered it (a reclaimed container's parked
// fetch) reports it: the activation goes to another container.
func TestLeavingContainerGivesBackUnansweredFetch(t *testing.T) {
	t.Parallel()
	h := newHandoverEnv(t)
	s1, _ := h.leaders()
	x := h.handFirst(s1.addr)
	rc := rpc.NewClient(mustDial(h.t, s1.addr))
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	r, err := rc.Fetch(ctx, &rpc.FetchRequest{Namespace: h.f.Namespace, Action: h.f.Name, Rev: 1,
		InvokerID: "i1", ContainerID: "c1", Alive: false, Seq: 2, Unanswered: []whisk.SeqRange{{From: 1, To: 1}}})
	if err != nil || r.Status == rpc.FetchOK {
		t.Fatalf("the leaving container's last fetch: %+v %v", r, err)
	}
	if got := h.fetchOK(s1.addr, "i1", "c2"); got != x {
		t.Fatalf("c2 got %s, want %s (c1 never got it)", got, x)
	}
}

// A hand-out carries its leadership's epoch, and a successor's epoch is
// newer: a container that saw it refuses the predecessor's (the invoker's
// fetchSeqs).
func TestHandOutCarriesEpoch(t *testing.T) {
	t.Parallel()
	h := newHandoverEnv(t)
	s1, s2 := h.leaders()
	epochOf := func(addr, cid string) int64 {
		var e int64
		h.eventually("an activation from "+addr, func() bool {
			r, err := h.fetchFrom(addr, "i1", cid)
			if err == nil && r.Status == rpc.FetchOK {
				e = r.Epoch
				return true
			}
			return false
		})
		return e
	}
	h.publish(1)
	e1 := epochOf(s1.addr, "c1")
	s1.crash()
	h.awaitLeader("s2")
	h.publish(2)
	e2 := epochOf(s2.addr, "c2")
	if e1 <= 0 || e2 <= e1 {
		t.Fatalf("epochs of s1's and s2's hand-outs: %d, %d; want 0 < first < second", e1, e2)
	}
}
