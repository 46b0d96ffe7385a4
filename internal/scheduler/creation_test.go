package scheduler_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Deliverable 1 of issue 4: a creation that keeps failing retryably is
// tried 6 times (the first attempt and 5 retries) with the same creation
// id and a backoff of 100 ms·2^(n−1) between attempts, then counted
// failed; the queue asks again later with a new id.
func TestCreationRetriedFiveTimesWithBackoff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s1 := e.scheduler("s1", scheduler.Config{})
	inv := e.session()
	if err := inv.RegisterInvoker(e.ctx, whisk.InvokerInfo{ID: "i0", Status: whisk.InvokerUp, UserMemory: 1024, FreeMemory: 1024}); err != nil {
		t.Fatal(err)
	}
	c0 := e.subscribe(whisk.InvokerTopic("i0"), "invoker")
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	e.publish("1", "c0")
	var first whisk.ContainerCreation
	var last time.Time
	for attempt := 0; attempt <= 5; attempt++ {
		cr := next[whisk.ContainerCreation](t, c0)
		now := time.Now()
		if attempt == 0 {
			first = cr
		} else {
			// The backoff before retry n is 100 ms·2^(n−1) (10 % slack for
			// the clock, none for a loaded machine: it can only be longer).
			if want := 90 * time.Millisecond << (attempt - 1); now.Sub(last) < want {
				t.Errorf("retry %d came %v after the previous failure, want ≥ %v", attempt, now.Sub(last), want)
			}
		}
		if cr.CreationID != first.CreationID || cr.Retry != attempt {
			t.Fatalf("attempt %d: creation %+v, want id %s retry %d", attempt, cr, first.CreationID, attempt)
		}
		n, err := e.client.CountCreations(e.ctx, hello.FQN(), 1)
		if err != nil || n != 1 {
			t.Fatalf("attempt %d: %d creation keys (%v), want 1", attempt, n, err)
		}
		last = time.Now()
		b, _ := json.Marshal(whisk.CreationAck{CreationID: cr.CreationID, InvokerID: "i0", Action: hello,
			Error: "resources exhausted", Retryable: true})
		if err := e.bus.Publish(e.ctx, whisk.CreationAckTopic("s1"), b); err != nil {
			t.Fatal(err)
		}
	}
	// Counted failed: the queue (Flushing) asks again after its flush
	// retry, with a new creation id; never a 7th attempt of the first.
	cr := next[whisk.ContainerCreation](t, c0)
	if cr.CreationID == first.CreationID || cr.Retry != 0 {
		t.Fatalf("after 5 retries: creation %+v, want a new creation", cr)
	}
}

// Deliverable 1 of issue 4: a creation the invoker never acknowledges is
// counted failed after the creation timeout: its key goes, the queue asks
// for a new container, and a late ack of the old creation changes nothing.
func TestCreationTimeoutCountsFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s1 := e.scheduler("s1", scheduler.Config{CreationTimeout: 300 * time.Millisecond})
	inv := e.session()
	if err := inv.RegisterInvoker(e.ctx, whisk.InvokerInfo{ID: "i0", Status: whisk.InvokerUp, UserMemory: 1024, FreeMemory: 1024}); err != nil {
		t.Fatal(err)
	}
	c0 := e.subscribe(whisk.InvokerTopic("i0"), "invoker")
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	aid := e.publish("1", "c0")
	lost := next[whisk.ContainerCreation](t, c0)
	start := time.Now()
	e.eventually("the timed-out creation's key deleted", func() bool {
		n, err := e.client.CountCreations(e.ctx, hello.FQN(), 1)
		return err == nil && n == 0
	})
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("the creation key went after %v, before the timeout", d)
	}
	again := next[whisk.ContainerCreation](t, c0)
	if again.CreationID == lost.CreationID {
		t.Fatalf("the timed-out creation was not counted failed: %+v", again)
	}
	// A late ack of the lost creation is dropped; the new one's key stays.
	late, _ := json.Marshal(whisk.CreationAck{CreationID: lost.CreationID, InvokerID: "i0", Action: hello, ContainerID: "late"})
	if err := e.bus.Publish(e.ctx, whisk.CreationAckTopic("s1"), late); err != nil {
		t.Fatal(err)
	}
	// The new creation succeeds and its container runs the activation.
	ci := whisk.ContainerInfo{Namespace: "guest", Action: "hello", Rev: 1, InvokerID: "i0", ContainerID: "c1", MemoryMB: 256}
	if err := inv.RegisterContainer(e.ctx, ci); err != nil {
		t.Fatal(err)
	}
	ack, _ := json.Marshal(whisk.CreationAck{CreationID: again.CreationID, InvokerID: "i0", Action: hello, ContainerID: "c1"})
	if err := e.bus.Publish(e.ctx, whisk.CreationAckTopic("s1"), ack); err != nil {
		t.Fatal(err)
	}
	if r := s1.fetch(t, 1); r.Status != rpc.FetchOK || r.Activation.ActivationID != aid {
		t.Fatalf("fetch %+v", r)
	}
	e.eventually("no creation key left", func() bool {
		n, err := e.client.CountCreations(e.ctx, hello.FQN(), 1)
		return err == nil && n == 0
	})
}
