package queue

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/testenv"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// conflictConsumer is a fakeConsumer whose Commit fails with kind
// Conflict once told to (the bus gave the topic to another consumer).
type conflictConsumer struct {
	*fakeConsumer
	mu       sync.Mutex
	conflict bool
}

func (c *conflictConsumer) Commit(ctx context.Context, off int64) error {
	c.mu.Lock()
	conflict := c.conflict
	c.mu.Unlock()
	if conflict {
		return whisk.E("test.Commit", whisk.Conflict, "", nil)
	}
	return c.fakeConsumer.Commit(ctx, off)
}

// startQueueWith runs a queue on consumer c with deps adjusted by mod.
func startQueueWith(t *testing.T, c bus.Consumer, mod func(*Deps)) *Queue {
	t.Helper()
	d := Deps{
		Now:             func() time.Time { return t0 },
		Subscribe:       func(context.Context) (bus.Consumer, error) { return c, nil },
		CountContainers: func(context.Context, int64) (int, error) { return 1, nil },
		CountNamespace:  func(context.Context) (int, int, error) { return 1, 0, nil },
		Create:          func(CreateRequest) {},
		Fail:            func(context.Context, whisk.ActivationMessage, whisk.Activation) error { return nil },
		Ticker:          func(time.Duration) (<-chan time.Time, func()) { return make(chan time.Time), func() {} },
	}
	if mod != nil {
		mod(&d)
	}
	q, err := New(Config{Action: meta(1), NamespaceLimit: 100}, d)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = q.Run(context.Background()) }()
	t.Cleanup(func() {
		q.Stop()
		<-q.Done()
	})
	return q
}

func fetchOne(t *testing.T, q *Queue) *rpc.FetchResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	r, err := q.Fetch(ctx, &rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: 1, Alive: true})
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return r
}

func waitEnded(t *testing.T, q *Queue) End {
	t.Helper()
	select {
	case <-q.Done():
	case <-time.After(patience):
		t.Fatal("the queue did not end")
	}
	return q.Ended()
}

// A Poll that fails with kind Conflict (the partition was given to another
// consumer) ends the queue as lost: what it buffered is not handed out.
func TestRunPollConflictEndsQueue(t *testing.T) {
	c := newFakeConsumer()
	q := startQueueWith(t, c, nil)
	c.publish(t, 0, activation("00000000000000000000000000000000", 1))
	c.publish(t, 1, activation("00000000000000000000000000000001", 1))
	if r := fetchOne(t, q); r.Status != rpc.FetchOK || r.Activation.ActivationID != "00000000000000000000000000000000" {
		t.Fatalf("fetch %+v", r)
	}
	// Let the second reach the buffer, then lose the partition.
	testenv.Eventually(t, patience, "the second record read", func() bool { return len(c.recs) == 0 })
	c.fail(whisk.E("test.Poll", whisk.Conflict, "", nil))
	if why := waitEnded(t, q); why != EndLost {
		t.Fatalf("ended %v, want %v", why, EndLost)
	}
	if r := fetchOne(t, q); r.Status == rpc.FetchOK {
		t.Fatalf("a lost queue handed out %+v", r.Activation)
	}
}

// A Commit that fails with kind Conflict ends the queue as lost.
func TestRunCommitConflictEndsQueue(t *testing.T) {
	c := &conflictConsumer{fakeConsumer: newFakeConsumer()}
	q := startQueueWith(t, c, nil)
	c.publish(t, 0, activation("00000000000000000000000000000000", 1))
	c.mu.Lock()
	c.conflict = true
	c.mu.Unlock()
	if r := fetchOne(t, q); r.Status != rpc.FetchOK {
		t.Fatalf("fetch %+v", r)
	}
	if why := waitEnded(t, q); why != EndLost {
		t.Fatalf("ended %v, want %v", why, EndLost)
	}
}

// Activations a predecessor handed out (they have a record) and ids
// consumed before are skipped and committed, never handed out twice. Only
// records published before the consumer got the topic are looked up.
func TestRunSkipsDuplicates(t *testing.T) {
	c := newFakeConsumer()
	var (
		mu    sync.Mutex
		asked []whisk.ActivationID
	)
	recorded := whisk.ActivationID("0000000000000000000000000000000a")
	q := startQueueWith(t, c, func(d *Deps) {
		d.Recorded = func(_ context.Context, msgs []whisk.ActivationMessage) (map[whisk.ActivationID]bool, error) {
			mu.Lock()
			defer mu.Unlock()
			out := map[whisk.ActivationID]bool{}
			for _, m := range msgs {
				asked = append(asked, m.ActivationID)
				out[m.ActivationID] = m.ActivationID == recorded
			}
			return out, nil
		}
	})
	old := activation(string(recorded), 1)
	old.Published = t0.Add(-time.Second).UnixMilli()
	fresh := activation("0000000000000000000000000000000b", 1)
	fresh.Published = t0.Add(-time.Second).UnixMilli()
	later := activation("0000000000000000000000000000000c", 1)
	later.Published = t0.Add(time.Minute).UnixMilli() // after the consumer got the topic
	c.publish(t, 0, old)
	c.publish(t, 1, fresh)
	c.publish(t, 2, fresh) // published twice
	c.publish(t, 3, later)
	for _, want := range []whisk.ActivationID{fresh.ActivationID, later.ActivationID} {
		if r := fetchOne(t, q); r.Status != rpc.FetchOK || r.Activation.ActivationID != want {
			t.Fatalf("fetch %+v, want %s", r, want)
		}
	}
	if n := q.Duplicates(); n != 2 {
		t.Fatalf("duplicates %d, want 2", n)
	}
	mu.Lock()
	for _, id := range asked {
		if id == later.ActivationID {
			t.Errorf("looked up %s, published after the consumer got the topic", id)
		}
	}
	mu.Unlock()
	q.Stop()
	if why := waitEnded(t, q); why != EndStopped {
		t.Fatalf("ended %v, want %v", why, EndStopped)
	}
	if cs := c.commits(); len(cs) == 0 || cs[len(cs)-1] != 3 {
		t.Fatalf("commits %v, want through offset 3 (duplicates count as done)", cs)
	}
}

func TestRunAbandonEnds(t *testing.T) {
	q := startQueueWith(t, newFakeConsumer(), nil)
	q.Abandon()
	if why := waitEnded(t, q); why != EndAbandoned {
		t.Fatalf("ended %v, want %v", why, EndAbandoned)
	}
}
