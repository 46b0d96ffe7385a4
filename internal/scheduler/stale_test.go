package scheduler_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// fenceBus hands out ack-topic consumers that fence() makes fail with kind
// Conflict, as Kafka's group does to a member paused longer than its
// session timeout ("the group gave the partition to another consumer").
type fenceBus struct {
	scheduler.Bus
	mu         sync.Mutex
	consumers  []*fencedConsumer
	subscribes atomic.Int32
}

type fencedConsumer struct {
	bus.Consumer
	fenced atomic.Bool
	stop   chan struct{} // closed by fence
}

func (c *fencedConsumer) Poll(ctx context.Context, n int) ([]bus.Record, error) {
	if c.fenced.Load() {
		return nil, whisk.E("test.Poll", whisk.Conflict, "", nil)
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // a fence ends a Poll in progress, as the Kafka consumer's does
		select {
		case <-pctx.Done():
		case <-c.stop:
			cancel()
		}
	}()
	recs, err := c.Consumer.Poll(pctx, n)
	if c.fenced.Load() {
		return nil, whisk.E("test.Poll", whisk.Conflict, "", nil)
	}
	return recs, err
}

func (b *fenceBus) Subscribe(ctx context.Context, topic, group string) (bus.Consumer, error) {
	c, err := b.Bus.Subscribe(ctx, topic, group)
	if err != nil || topic != whisk.CreationAckTopic("s1") {
		return c, err
	}
	b.subscribes.Add(1)
	fc := &fencedConsumer{Consumer: c, stop: make(chan struct{})}
	b.mu.Lock()
	b.consumers = append(b.consumers, fc)
	b.mu.Unlock()
	return fc, nil
}

func (b *fenceBus) fence() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.consumers {
		if !c.fenced.Swap(true) {
			close(c.stop)
		}
	}
}

// A scheduler whose creation-ack consumer is fenced off by the bus
// subscribes again and reads acks: it is never left half alive, creating
// containers whose acks it never reads.
func TestAckConsumerFencedSubscribesAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fb := &fenceBus{}
	e.wrapBus = func(b scheduler.Bus) scheduler.Bus { fb.Bus = b; return fb }
	s1 := e.scheduler("s1", scheduler.Config{CreationTimeout: 60e9})
	inv := e.session()
	if err := inv.RegisterInvoker(e.ctx, whisk.InvokerInfo{ID: "i0", Status: whisk.InvokerUp, UserMemory: 1024, FreeMemory: 1024}); err != nil {
		t.Fatal(err)
	}
	c0 := e.subscribe(whisk.InvokerTopic("i0"), "invoker")
	fb.fence()
	e.eventually("the ack consumer subscribed again", func() bool { return fb.subscribes.Load() >= 2 })
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	e.publish("1", "c0")
	cr := next[whisk.ContainerCreation](t, c0)
	b, _ := json.Marshal(whisk.CreationAck{CreationID: cr.CreationID, InvokerID: "i0", Action: hello,
		Error: "resources exhausted", Retryable: true})
	if err := e.bus.Publish(e.ctx, whisk.CreationAckTopic("s1"), b); err != nil {
		t.Fatal(err)
	}
	// The ack was read: the creation is retried at once, not after the
	// creation timeout (a minute).
	if again := next[whisk.ContainerCreation](t, c0); again.CreationID != cr.CreationID || again.Retry != 1 {
		t.Fatalf("after the ack: %+v, want retry 1 of %s", again, cr.CreationID)
	}
}
