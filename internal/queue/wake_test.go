package queue

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/testenv"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Idle queues park: no periodic tick and no timed Poll while a queue has
// nothing to do, yet an arrival is handled at once, the watermark is
// committed without a later arrival, and the idle timeout still removes it.
// These tests run on the real clock and the in-memory bus (no Ticker).

// countingConsumer counts the Polls of a real consumer and keeps its last
// successful commit.
type countingConsumer struct {
	bus.Consumer
	polls     atomic.Int64
	committed atomic.Int64
}

// Notify returns true, as a consumer that cannot call back does (Kafka's):
// the reader polls.
func (c *countingConsumer) Notify(func()) bool { return true }

func (c *countingConsumer) Poll(ctx context.Context, max int) ([]bus.Record, error) {
	c.polls.Add(1)
	return c.Consumer.Poll(ctx, max)
}

func (c *countingConsumer) Commit(ctx context.Context, off int64) error {
	err := c.Consumer.Commit(ctx, off)
	if err == nil {
		c.committed.Store(off)
	}
	return err
}

// notifyingConsumer is a countingConsumer that keeps the memory
// consumer's Notify, so that the reader parks with no goroutine.
type notifyingConsumer struct {
	*countingConsumer
	n        bus.Consumer
	notifies atomic.Int64
}

func (c *notifyingConsumer) Notify(f func()) bool {
	c.notifies.Add(1)
	return c.n.Notify(f)
}

type liveQueue struct {
	q       *Queue
	b       *memory.Bus
	c       atomic.Pointer[countingConsumer]
	creates chan CreateRequest
	done    chan struct{}
}

const liveTopic = "t"

func startLive(t *testing.T, cfg Config) *liveQueue {
	t.Helper()
	return startLiveQueue(t, cfg, nil)
}

// startLiveQueue starts a live queue; notifying, if not nil, is given the
// notifyingConsumer the queue's reader gets (the reader then parks).
func startLiveQueue(t *testing.T, cfg Config, notifying *atomic.Pointer[notifyingConsumer]) *liveQueue {
	t.Helper()
	l := &liveQueue{b: memory.New(nil), creates: make(chan CreateRequest, 16), done: make(chan struct{})}
	ctx := context.Background()
	if err := l.b.EnsureTopic(ctx, liveTopic); err != nil {
		t.Fatal(err)
	}
	cfg.Action = meta(1)
	cfg.NamespaceLimit = 100
	q, err := New(cfg, Deps{
		Now: time.Now,
		Subscribe: func(ctx context.Context) (bus.Consumer, error) {
			c, err := l.b.Subscribe(ctx, liveTopic, "queue")
			if err != nil {
				return nil, err
			}
			cc := &countingConsumer{Consumer: c}
			cc.committed.Store(-1)
			l.c.Store(cc)
			if notifying != nil {
				nc := &notifyingConsumer{countingConsumer: cc, n: c}
				notifying.Store(nc)
				return nc, nil
			}
			return cc, nil
		},
		CountContainers: func(context.Context, int64) (int, error) { return 0, nil },
		CountNamespace:  func(context.Context) (int, int, error) { return 0, 0, nil },
		Create:          func(r CreateRequest) { l.creates <- r },
		Fail:            func(context.Context, whisk.ActivationMessage, whisk.Activation) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	l.q = q
	go func() { _ = q.Run(ctx); close(l.done) }()
	t.Cleanup(func() {
		q.Stop()
		<-l.done
		_ = l.b.Close()
	})
	return l
}

func (l *liveQueue) publish(t *testing.T, id string) {
	t.Helper()
	b, err := json.Marshal(activation(id, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.b.Publish(context.Background(), liveTopic, b); err != nil {
		t.Fatal(err)
	}
}

// until polls cond until it holds (testenv.Eventually, with patience).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, patience, what, cond)
}

func TestIdleQueueParks(t *testing.T) {
	const tick = 10 * time.Millisecond
	l := startLive(t, Config{Tick: tick, Park: 20 * time.Millisecond, IdleTimeout: time.Hour})
	until(t, "the queue to go idle", func() bool {
		c := l.c.Load()
		return l.q.State() == Idle && c != nil && c.polls.Load() > 0 // the reader waits in its first Poll
	})
	c := l.c.Load()
	polls := c.polls.Load()
	const window = 500 * time.Millisecond
	time.Sleep(window)
	// A ticking queue would have ticked window/tick = 50 times, and a
	// reader with timed Polls polled again; the parked queue did neither.
	if n := c.polls.Load() - polls; n != 0 {
		t.Errorf("an idle queue's reader polled %d more times in %v", n, window)
	}
	// An arrival at the parked queue is handled at once: it asks for a
	// container with no tick (Tick is 10 ms; the bound is loose for a
	// loaded machine, and far below the idle timeout the queue sleeps for).
	cr, _ := l.arrive(t, "00000000000000000000000000000001")
	cr.Done(CreationResult{ID: cr.ID, OK: true})
	// The hand-off is committed with no later arrival to end the Poll.
	until(t, "the commit of the handed activation", func() bool { return c.committed.Load() == 0 })
	l.q.Stop()
	<-l.done
	// Going idle again took a few wake-ups (the park of the container's
	// fetches, the quiet time), not one per tick for the window.
	if l.q.wakes > 25 {
		t.Errorf("%d wake-ups; an idle queue should sleep", l.q.wakes)
	}
}

// arrive publishes activation id to the idle queue, checks that the queue
// asks for a container on the arrival (within wait's patience, which is
// loose for a loaded machine and far below the hour-long idle timeout the
// queue sleeps for), and fetches it.
func (l *liveQueue) arrive(t *testing.T, id string) (CreateRequest, *rpc.FetchResponse) {
	t.Helper()
	l.publish(t, id)
	cr := wait(t, l.creates, "a creation for the arrival")
	r, err := l.q.Fetch(context.Background(), &rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: 1, Alive: true, ContainerID: "c1"})
	if err != nil || r.Status != rpc.FetchOK {
		t.Fatalf("fetch: %+v %v", r, err)
	}
	return cr, r
}

// readerGoroutines counts the goroutines running the queue's reader.
func readerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "queue.(*reader).")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestIdleReaderParksWithNoGoroutine: on a consumer that can call back (the
// in-memory bus), an idle queue's reader keeps no goroutine and polls no
// more; an arrival still asks for a container at once, the hand-off is
// committed with no later arrival, and Stop closes the consumer.
func TestIdleReaderParksWithNoGoroutine(t *testing.T) {
	var nc atomic.Pointer[notifyingConsumer]
	l := startLiveQueue(t, Config{Tick: 10 * time.Millisecond, Park: 20 * time.Millisecond, IdleTimeout: time.Hour}, &nc)
	until(t, "the queue to go idle with a parked reader", func() bool {
		c := nc.Load()
		return l.q.State() == Idle && c != nil && c.notifies.Load() > 0 && readerGoroutines() == 0
	})
	c := nc.Load()
	polls := c.polls.Load()
	time.Sleep(300 * time.Millisecond)
	if n := c.polls.Load() - polls; n != 0 {
		t.Errorf("a parked reader polled %d times", n)
	}
	if n := readerGoroutines(); n != 0 {
		t.Errorf("%d reader goroutines while idle", n)
	}

	cr, r := l.arrive(t, "00000000000000000000000000000001")
	if r.Activation == nil || r.Activation.ActivationID != "00000000000000000000000000000001" {
		t.Fatalf("fetch: %+v", r)
	}
	cr.Done(CreationResult{ID: cr.ID, OK: true})
	// The hand-off moved the watermark while the reader was parked: a wake
	// after pollWait commits it.
	until(t, "the commit of the handed activation", func() bool { return c.committed.Load() == 0 })
	until(t, "the reader to park again", func() bool { return readerGoroutines() == 0 })

	// A second arrival at the parked reader reaches the owner too.
	l.publish(t, "00000000000000000000000000000002")
	r, err := l.q.Fetch(context.Background(), &rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: 1, Alive: true, ContainerID: "c1"})
	if err != nil || r.Status != rpc.FetchOK || r.Activation == nil || r.Activation.ActivationID != "00000000000000000000000000000002" {
		t.Fatalf("second fetch: %+v %v", r, err)
	}
	until(t, "the commit of the second activation", func() bool { return c.committed.Load() == 1 })

	l.q.Stop()
	<-l.done
	// Run returned after the (parked) reader closed the consumer: the group
	// can subscribe again.
	c2, err := l.b.Subscribe(context.Background(), liveTopic, "queue")
	if err != nil {
		t.Fatalf("subscribe after Stop: %v", err)
	}
	_ = c2.Close()
}

// TestParkedReaderTopicDeleted: deleting the topic of a queue whose reader
// is parked ends the queue (topic gone).
func TestParkedReaderTopicDeleted(t *testing.T) {
	var nc atomic.Pointer[notifyingConsumer]
	l := startLiveQueue(t, Config{Tick: 10 * time.Millisecond, Park: 20 * time.Millisecond, IdleTimeout: time.Hour}, &nc)
	until(t, "a parked reader", func() bool {
		c := nc.Load()
		return c != nil && c.notifies.Load() > 0 && readerGoroutines() == 0
	})
	if err := l.b.DeleteTopic(context.Background(), liveTopic); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the queue did not end after its topic was deleted")
	}
	if e := l.q.Ended(); e != EndTopicGone {
		t.Errorf("ended %v, want %v", e, EndTopicGone)
	}
}

// nextWake names the queue's next duty: every tick only while activations
// wait; otherwise the end of a park, the quiet time before Idle, or the
// idle timeout.
func TestNextWake(t *testing.T) {
	const tick, park, idle = 100 * time.Millisecond, time.Second, 30 * time.Second
	h := newHarness(t)
	at := func(what string, want time.Time) {
		t.Helper()
		if got := h.q.nextWake(h.now); !got.Equal(want) {
			t.Fatalf("%s: next wake-up at %v, want %v", what, got.Sub(t0), want.Sub(t0))
		}
	}
	at("a new queue with nothing: two parks after its start (→ Idle)", t0.Add(2*park))
	h.advance(2 * park)
	h.tick()
	h.state(Idle)
	at("idle: at the idle timeout", h.now.Add(idle))

	h.msg(0, 1) // asks for a container
	at("an activation waits: the next tick", h.now.Add(tick))
	h.result(0, true, false)
	f := h.fetch(1, true, true, 0)
	if r := reply(t, f); r.Status != rpc.FetchOK {
		t.Fatalf("fetch got %+v", r)
	}
	h.advance(300 * time.Millisecond)
	h.fetch(1, true, true, 0) // parks
	parkedAt := h.now
	h.advance(200 * time.Millisecond)
	h.fetch(1, true, true, 0) // parks too
	at("parked fetches: the oldest one's park ends", parkedAt.Add(park))
	h.advance(park)
	h.tick() // both expire
	at("nothing parked, quiet: two parks after the last fetch", parkedAt.Add(200*time.Millisecond).Add(2*park))
	h.advance(2 * park)
	h.tick()
	h.state(Idle)
	at("idle again: the idle timeout", h.now.Add(idle))

	// A duty that stays due (here: the idle timeout's count is in flight)
	// never spins the owner: no wake-up before a tick from now.
	h.q.counting = true
	h.advance(idle)
	if got := h.q.nextWake(h.now); !got.IsZero() && got.Before(h.now.Add(tick)) {
		t.Fatalf("wake-up %v ahead, less than a tick", got.Sub(h.now))
	}
	h.q.counting = false
}
