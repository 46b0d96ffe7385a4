package invoker_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// pySleepy sleeps the "ms" parameter's milliseconds.
const pySleepy = "import time\ndef main(args):\n    time.sleep(args.get('ms', 0) / 1000.0)\n    return {'slept': args.get('ms', 0)}\n"

// createSwap asks for a container of o's action with SwapNamespace set.
func (o *own) createSwap(ns string) whisk.CreationAck {
	o.e.t.Helper()
	b, _ := json.Marshal(whisk.ContainerCreation{
		CreationID: fmt.Sprintf("cr-%d", time.Now().UnixNano()), Action: o.a.Meta(),
		SchedulerID: o.e.sid, SchedulerAddr: o.addr, Requested: time.Now().UnixMilli(), SwapNamespace: ns,
	})
	if err := o.e.bus.Publish(o.e.ctx, whisk.InvokerTopic(o.e.id), b); err != nil {
		o.e.t.Fatal(err)
	}
	return o.e.nextAck()
}

// enqueue hands the next fetch of o's stub an activation with params.
func (o *own) enqueue(params string) {
	o.stub.queue <- &whisk.ActivationMessage{
		ActivationID: whisk.NewActivationID(), TransactionID: whisk.NewTransactionID(),
		Action: o.a.Meta(), Subject: "guest", Params: json.RawMessage(params),
		Blocking: true, ControllerID: "c0", Published: time.Now().UnixMilli(),
	}
}

// TestReclaimIdleWarmContainers: an invoker with no free memory removes an
// idle warm container of another action, the least recently used one,
// before it refuses a creation (OpenWhisk's ContainerPool.remove); a
// container running an activation is never taken, and with nothing idle
// the creation is refused with nothing removed; idle containers are
// published (IdleMemory, Idle by namespace); the backend never holds more
// than the budget; a swap (SwapNamespace) removes one idle container of the
// namespace even when memory is free.
func TestReclaimIdleWarmContainers(t *testing.T) {
	t.Parallel()
	const busyMs = 12000
	counting := &countingBackend{}
	e := newEnvWith(t, invoker.Config{UserMemoryMB: 512, IdleTimeout: time.Minute, StemCells: nil},
		etcd, envWrap{backend: counting.wrap})
	older := e.own(e.putAction("older", "python:3.11", pySleepy, whisk.Limits{}))
	newer := e.own(e.putAction("newer", "python:3.11", pySleepy, whisk.Limits{}))
	for _, o := range []*own{older, newer} {
		if ack := o.create(); ack.Error != "" {
			t.Fatalf("ack %+v", ack)
		}
		if rec := o.invoke(); !rec.Response.Success {
			t.Fatalf("record %+v", rec)
		}
	}
	// Both fetch again and come back empty: idle, and published as such.
	waitFor(t, 10*time.Second, "two idle containers published", func() bool {
		i, _ := e.invokerInfo()
		return i.FreeMemory == 0 && i.IdleMemory == 512 && i.Idle["guest"] == 2 && i.Reclaimable() == 512
	})

	// A third action: the least recently used (older) goes, newer stays.
	third := e.own(e.putAction("third", "python:3.11", pySleepy, whisk.Limits{}))
	if ack := third.create(); ack.Error != "" {
		t.Fatalf("third: ack %+v, want a container in older's memory", ack)
	}
	// older (least recently used) goes. Its proxy deregisters it before
	// the creation is acked, but a delete that times out on a loaded etcd
	// is retried by the session: the count may take a moment.
	waitFor(t, 10*time.Second, "older (least recently used) down to 0 containers", func() bool {
		return e.containers(older.a) == 0
	})
	if n := e.containers(newer.a); n != 1 {
		t.Errorf("newer has %d containers, want 1", n)
	}
	if _, bye := older.stub.fetchLog(); len(bye) != 1 {
		t.Errorf("older's queue got %d goodbyes (Alive false), want 1", len(bye))
	} else if !bye[0].UnansweredSeq(bye[0].Seq - 1) {
		// Its parked fetch was cancelled, not waited for: the goodbye
		// says so, so that a queue that answered it hands the activation
		// out again.
		t.Errorf("older's goodbye (fetch %d) reports unanswered %v, want its parked fetch %d among them", bye[0].Seq, bye[0].Unanswered, bye[0].Seq-1)
	}
	if rec := third.invoke(); !rec.Response.Success || startOf(t, rec) != whisk.StartCold {
		t.Errorf("third's first activation: %+v", rec)
	}

	// newer runs a long activation; third is idle: a fourth action takes
	// third's memory, never newer's, and newer's activation completes.
	idle := func(n int) func() bool {
		return func() bool {
			i, _ := e.invokerInfo()
			return i.Idle["guest"] == n
		}
	}
	waitFor(t, 10*time.Second, "newer and third idle", idle(2))
	// The long activations outlast what comes between on a loaded
	// machine (a creation, a removal, two waits): newer must still run
	// when fifth is asked for.
	newer.enqueue(fmt.Sprintf(`{"ms": %d}`, busyMs))
	waitFor(t, 10*time.Second, "newer busy", func() bool { return len(newer.stub.queue) == 0 && idle(1)() })
	fourth := e.own(e.putAction("fourth", "python:3.11", pySleepy, whisk.Limits{}))
	if ack := fourth.create(); ack.Error != "" {
		t.Fatalf("fourth: ack %+v", ack)
	}
	waitFor(t, 10*time.Second, "third (idle) down to 0 containers", func() bool {
		return e.containers(third.a) == 0
	})
	// Both containers now run activations: nothing is idle, a fifth is
	// refused and nothing is removed.
	fourth.enqueue(fmt.Sprintf(`{"ms": %d}`, busyMs))
	waitFor(t, 10*time.Second, "fourth busy", func() bool { return len(fourth.stub.queue) == 0 && idle(0)() })
	fifth := e.own(e.putAction("fifth", "python:3.11", pySleepy, whisk.Limits{}))
	if ack := fifth.create(); ack.Error != "not enough memory" {
		t.Errorf("fifth with every container busy: ack %+v, want not enough memory", ack)
	}
	for i := 0; i < 2; i++ {
		if rec := e.completion(30 * time.Second); !rec.Response.Success || string(rec.Response.Result) != fmt.Sprintf(`{"slept":%d}`, busyMs) {
			t.Errorf("a busy container's activation: %+v (%s)", rec, rec.Response.Result)
		}
	}
	if n := e.containers(newer.a) + e.containers(fourth.a); n != 2 {
		t.Errorf("newer and fourth have %d containers, want 2", n)
	}

	// A swap (the namespace at its limit) takes one idle container of the
	// namespace; with none of the named namespace it is refused.
	waitFor(t, 10*time.Second, "both idle again", idle(2))
	if ack := fifth.createSwap("guest"); ack.Error != "" {
		t.Fatalf("swap: ack %+v", ack)
	}
	// As above, the victim's key may take a moment to go (ci7 saw 2 once,
	// right after the ack).
	waitFor(t, 10*time.Second, "newer and fourth down to 1 container after a swap", func() bool {
		return e.containers(newer.a)+e.containers(fourth.a) == 1
	})
	if ack := third.createSwap("other-namespace"); ack.Error == "" {
		t.Errorf("a swap for a namespace with no idle container succeeded")
	}
	if max := counting.maxMemory(); max > 512 {
		t.Errorf("the backend held %d MB at once, over the invoker's 512", max)
	}
}
