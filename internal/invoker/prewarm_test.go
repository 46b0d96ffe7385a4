package invoker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

const pyNoop = "def main(args):\n    return {'ok': True}\n"

// startOf is a record's "start" annotation, checked against its timings.
func startOf(t *testing.T, rec whisk.Activation) string {
	t.Helper()
	v, ok := annotation(rec, whisk.AnnStart)
	if !ok {
		t.Fatalf("record %s has no start annotation: %s", rec.ActivationID, rec.Annotations)
	}
	var start string
	if err := json.Unmarshal([]byte(v), &start); err != nil {
		t.Fatal(err)
	}
	var tm whisk.Timings
	raw, _ := annotation(rec, whisk.AnnTimings)
	if err := json.Unmarshal([]byte(raw), &tm); err != nil || tm.Start != start {
		t.Errorf("timings %s disagree with start %q", raw, start)
	}
	_, hasInit := annotation(rec, whisk.AnnInitTime)
	if hasInit != (start != whisk.StartWarm) {
		t.Errorf("start %q with initTime present = %v", start, hasInit)
	}
	if start == whisk.StartPrewarm && tm.Create != 0 {
		t.Errorf("prewarm start with a container creation of %d ms", tm.Create)
	}
	return start
}

// stemCells counts the idle stem cells of kind and memory, as the invoker
// and as its etcd registration say.
func (e *env) stemCells(kind string, mem int64) (local, published int) {
	e.t.Helper()
	for _, c := range e.inv.StemCells() {
		if c.Kind == kind && c.MemoryMB == mem {
			local = c.Count
		}
	}
	info, _ := e.invokerInfo()
	for _, c := range info.StemCells {
		if c.Kind == kind && c.MemoryMB == mem {
			published = c.Count
		}
	}
	return local, published
}

func (e *env) waitStemCells(kind string, mem int64, n int) {
	e.t.Helper()
	waitFor(e.t, 30*time.Second, fmt.Sprintf("%d stem cells of %s/%d MB", n, kind, mem), func() bool {
		l, p := e.stemCells(kind, mem)
		return l == n && p == n
	})
}

// own is an action with a stub scheduler of its own, so that its
// activations go to its containers only (the env's stub hands its queue to
// any container).
type own struct {
	e    *env
	a    whisk.Action
	stub *stubScheduler
	addr string
}

func (e *env) own(a whisk.Action) *own {
	s := newStub()
	return &own{e: e, a: a, stub: s, addr: serveStub(e.t, s)}
}

// create asks the invoker for a container of the action and returns the ack.
func (o *own) create() whisk.CreationAck {
	o.e.t.Helper()
	b, _ := json.Marshal(whisk.ContainerCreation{
		CreationID: fmt.Sprintf("cr-%d", time.Now().UnixNano()), Action: o.a.Meta(),
		SchedulerID: o.e.sid, SchedulerAddr: o.addr, Requested: time.Now().UnixMilli(),
	})
	if err := o.e.bus.EnsureTopic(o.e.ctx, whisk.InvokerTopic(o.e.id)); err != nil {
		o.e.t.Fatal(err)
	}
	if err := o.e.bus.Publish(o.e.ctx, whisk.InvokerTopic(o.e.id), b); err != nil {
		o.e.t.Fatal(err)
	}
	return o.e.nextAck()
}

// invoke runs one activation of the action and returns its record.
func (o *own) invoke() whisk.Activation {
	o.e.t.Helper()
	o.stub.queue <- &whisk.ActivationMessage{
		ActivationID: whisk.NewActivationID(), TransactionID: whisk.NewTransactionID(),
		Action: o.a.Meta(), Subject: "guest", Params: json.RawMessage("{}"),
		Blocking: true, ControllerID: "c0", Published: time.Now().UnixMilli(),
	}
	return o.e.completion(30 * time.Second)
}

// TestPrewarmHit: the first activation of a new action of a prewarmed kind
// and memory runs in a stem cell ("prewarm"), the next in the same
// container ("warm"); the pool refills and the next new action hits too;
// another memory size gets a cold start.
func TestPrewarmHit(t *testing.T) {
	t.Parallel()
	counting := &countingBackend{}
	e := newEnvWith(t, invoker.Config{StemCells: []invoker.StemCell{{Kind: "python:3.11", MemoryMB: 256, Count: 1}}},
		etcd, envWrap{backend: counting.wrap})
	e.waitStemCells("python:3.11", 256, 1)
	waitFor(t, 10*time.Second, "free memory published without the stem cell", func() bool {
		i, _ := e.invokerInfo()
		return i.FreeMemory == 2048-256 && i.StemCellMemory == 256 && i.Available() == 2048
	})
	if n := counting.created.Load(); n != 1 {
		t.Fatalf("%d containers created for one stem cell", n)
	}

	for i, name := range []string{"first", "second"} {
		a := e.putAction(name, "python:3.11", pyNoop, whisk.Limits{})
		o := e.own(a)
		if ack := o.create(); ack.Error != "" {
			t.Fatalf("%s: ack %+v", name, ack)
		}
		if got := startOf(t, o.invoke()); got != whisk.StartPrewarm {
			t.Errorf("%s action's first activation: start %q, want prewarm", name, got)
		}
		if got := startOf(t, o.invoke()); got != whisk.StartWarm {
			t.Errorf("%s action's second activation: start %q, want warm", name, got)
		}
		if n := e.containers(a); n != 1 {
			t.Errorf("%s: %d containers registered, want 1", name, n)
		}
		// The pool refills in the background with a new container.
		e.waitStemCells("python:3.11", 256, 1)
		if n := counting.created.Load(); n != int64(i+2) {
			t.Errorf("after %s: %d containers created, want %d", name, n, i+2)
		}
	}

	small := e.own(e.putAction("small", "python:3.11", pyNoop, whisk.Limits{Memory: 128}))
	if ack := small.create(); ack.Error != "" {
		t.Fatalf("small: ack %+v", ack)
	}
	if got := startOf(t, small.invoke()); got != whisk.StartCold {
		t.Errorf("128 MB action with only 256 MB stem cells: start %q, want cold", got)
	}
	if l, _ := e.stemCells("python:3.11", 256); l != 1 {
		t.Errorf("a cold start took the stem cell: %d left", l)
	}

	// Shutdown removes the stem cell with the action containers.
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
	if n := counting.liveCount(); n != 0 {
		t.Errorf("%d containers left after shutdown", n)
	}
}

// TestPrewarmMemoryAccounting: stem cells count against the invoker's
// memory, never take more than it has, and give way to a real container
// that needs their memory; the pool refills once memory is free again.
func TestPrewarmMemoryAccounting(t *testing.T) {
	t.Parallel()
	counting := &countingBackend{}
	e := newEnvWith(t, invoker.Config{
		UserMemoryMB: 600, IdleTimeout: time.Second,
		StemCells: []invoker.StemCell{{Kind: "python:3.11", MemoryMB: 256, Count: 3}},
	}, etcd, envWrap{backend: counting.wrap})
	// Two fit in 600 MB; the third waits for memory.
	e.waitStemCells("python:3.11", 256, 2)
	if got := e.inv.FreeMemoryMB(); got != 600-512 {
		t.Errorf("free memory %d with two stem cells, want %d", got, 600-512)
	}
	i, _ := e.invokerInfo()
	if i.FreeMemory != 88 || i.StemCellMemory != 512 {
		t.Errorf("published free %d, stem cells %d; want 88 and 512", i.FreeMemory, i.StemCellMemory)
	}

	// A 128 MB action fits in neither the free memory nor a stem cell: one
	// stem cell gives way.
	a := e.putAction("small", "python:3.11", pyNoop, whisk.Limits{Memory: 128})
	oa := e.own(a)
	if ack := oa.create(); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	if got := startOf(t, oa.invoke()); got != whisk.StartCold {
		t.Errorf("start %q, want cold", got)
	}
	if l, _ := e.stemCells("python:3.11", 256); l != 1 {
		t.Errorf("%d stem cells after one gave way, want 1", l)
	}
	if got := e.inv.FreeMemoryMB(); got != 600-256-128 {
		t.Errorf("free memory %d, want %d", got, 600-256-128)
	}
	// A 256 MB action takes the last stem cell; a second one finds no stem
	// cell and too little free memory: the idle warm container of "small"
	// (least recently used) gives way (reclaim.go).
	b := e.putAction("big", "python:3.11", pyNoop, whisk.Limits{})
	ob := e.own(b)
	if ack := ob.create(); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	if got := startOf(t, ob.invoke()); got != whisk.StartPrewarm {
		t.Errorf("start %q, want prewarm", got)
	}
	if ack := ob.create(); ack.Error != "" {
		t.Fatalf("second 256 MB container: ack %+v, want small's idle container reclaimed", ack)
	}
	if n := e.containers(a); n != 0 {
		t.Errorf("small still has %d containers after giving way", n)
	}

	// Once the containers go idle, the pool refills up to the memory.
	e.waitStemCells("python:3.11", 256, 2)
	waitFor(t, 20*time.Second, "memory back to two stem cells", func() bool {
		i, _ := e.invokerInfo()
		return e.inv.FreeMemoryMB() == 88 && i.FreeMemory == 88 && e.containers(a) == 0 && e.containers(b) == 0
	})
	if max := counting.maxMemory(); max > 600 {
		t.Errorf("the backend held %d MB at once, over the invoker's 600", max)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
	if n := counting.liveCount(); n != 0 {
		t.Errorf("%d containers left after shutdown", n)
	}
}

// TestPrewarmDeadStemCellReplaced: a stem cell that exits while idle is
// dropped, its memory released, and the pool refills.
func TestPrewarmDeadStemCellReplaced(t *testing.T) {
	t.Parallel()
	counting := &countingBackend{}
	e := newEnvWith(t, invoker.Config{StemCells: []invoker.StemCell{{Kind: "python:3.11", MemoryMB: 256, Count: 1}}},
		etcd, envWrap{backend: counting.wrap})
	e.waitStemCells("python:3.11", 256, 1)
	counting.mu.Lock()
	first := counting.stems[0]
	counting.mu.Unlock()
	// Killed behind the invoker's back (the inner container, not the counted one).
	if err := first.Remove(e.ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a second stem cell", func() bool {
		l, p := e.stemCells("python:3.11", 256)
		return counting.created.Load() == 2 && l == 1 && p == 1
	})
	if got := e.inv.FreeMemoryMB(); got != 2048-256 {
		t.Errorf("free memory %d, want %d: the dead stem cell's memory leaked or was released twice", got, 2048-256)
	}
	o := e.own(e.putAction("after", "python:3.11", pyNoop, whisk.Limits{}))
	if ack := o.create(); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	if got := startOf(t, o.invoke()); got != whisk.StartPrewarm {
		t.Errorf("start %q, want prewarm", got)
	}
}

// TestPrewarmFailuresBackOff: a kind whose stem cells cannot be created is
// retried with back-off, not in a loop, and holds no memory meanwhile.
func TestPrewarmFailuresBackOff(t *testing.T) {
	t.Parallel()
	counting := &countingBackend{failPrewarm: true}
	e := newEnvWith(t, invoker.Config{StemCells: []invoker.StemCell{{Kind: "python:3.11", MemoryMB: 256, Count: 2}}},
		etcd, envWrap{backend: counting.wrap})
	waitFor(t, 10*time.Second, "a first failed attempt", func() bool { return counting.attempts.Load() >= 1 })
	time.Sleep(2 * time.Second)
	// Back-off 250 ms, 500 ms, 1 s, ...: about 4 attempts in 2 s per stem
	// cell slot (two slots); a retry loop would make hundreds.
	if n := counting.attempts.Load(); n > 12 {
		t.Errorf("%d creation attempts in ~2 s: no back-off", n)
	}
	waitFor(t, 5*time.Second, "all memory free", func() bool { return e.inv.FreeMemoryMB() == 2048 })
	// Real creations still work.
	a := e.putAction("plain", "python:3.11", pyNoop, whisk.Limits{})
	if ack := e.create(a); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	if got := startOf(t, e.invoke(a, "")); got != whisk.StartCold {
		t.Errorf("start %q, want cold", got)
	}
}

// TestPrewarmDocker is TestPrewarmHit's core on the Docker backend.
func TestPrewarmDocker(t *testing.T) {
	t.Parallel()
	rt, _ := manifest.Default().Lookup("python:3.11")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := dockerBackend(ctx, t, fmt.Sprintf("prewarm-test-%d", os.Getpid()), rt.Image)
	counting := &countingBackend{}
	e := newEnvWith(t, invoker.Config{StemCells: []invoker.StemCell{{Kind: "python:3.11", MemoryMB: 256, Count: 1}}},
		etcd, envWrap{backend: func(container.Backend) container.Backend { return counting.wrap(b) }})
	e.waitStemCells("python:3.11", 256, 1)
	for _, name := range []string{"d1", "d2"} {
		o := e.own(e.putAction(name, "python:3.11", pyNoop, whisk.Limits{}))
		if ack := o.create(); ack.Error != "" {
			t.Fatalf("%s: ack %+v", name, ack)
		}
		if got := startOf(t, o.invoke()); got != whisk.StartPrewarm {
			t.Errorf("%s: start %q, want prewarm", name, got)
		}
		e.waitStemCells("python:3.11", 256, 1)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
	if n := counting.liveCount(); n != 0 {
		t.Errorf("%d containers left after shutdown", n)
	}
}

func TestParseStemCells(t *testing.T) {
	m := manifest.Default()
	base := []invoker.StemCell{{Kind: "python:3.11", MemoryMB: 256, Count: 1}}
	for _, c := range []struct {
		in   string
		want []invoker.StemCell
		err  bool
	}{
		{"", base, false},
		{"0", nil, false},
		{"none", nil, false},
		{"python:3.11:256:2", []invoker.StemCell{{Kind: "python:3.11", MemoryMB: 256, Count: 2}}, false},
		{"python:128MB:1, nodejs:default:256:3", []invoker.StemCell{{Kind: "python:3.11", MemoryMB: 128, Count: 1}, {Kind: "nodejs:18", MemoryMB: 256, Count: 3}}, false},
		{"python:3.11:256:0", nil, false},
		{"python:3.11:256", nil, true},
		{"cobol:85:256:1", nil, true},
		{"blackbox:256:1", nil, true},
		{"python:3.11:x:1", nil, true},
		{"python:3.11:256:-1", nil, true},
		{"python:256:1,python:3.11:256:2", nil, true},
	} {
		got, err := invoker.ParseStemCells(c.in, base, m.Resolve)
		if (err != nil) != c.err {
			t.Errorf("%q: err %v, want error %v", c.in, err, c.err)
			continue
		}
		if !c.err && fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%q: %v, want %v", c.in, got, c.want)
		}
	}
}

// countingBackend wraps a backend: it counts creations and the containers
// alive with their memory, and can fail the creation of stem cells.
type countingBackend struct {
	container.Backend
	failPrewarm bool
	created     atomic.Int64
	attempts    atomic.Int64

	mu      sync.Mutex
	stems   []container.Container // stem cells created, in order
	live    map[string]int64
	memory  int64
	peakMem int64
}

func (c *countingBackend) wrap(b container.Backend) container.Backend {
	c.Backend = b
	c.live = map[string]int64{}
	return c
}

func (c *countingBackend) Create(ctx context.Context, spec container.Spec) (container.Container, error) {
	if spec.Labels["eddy.prewarm"] == "true" {
		c.attempts.Add(1)
		if c.failPrewarm {
			return nil, errors.New("injected stem cell failure")
		}
	}
	// Counted before it exists, so that the peak covers creations racing
	// with removals.
	c.mu.Lock()
	c.memory += spec.MemoryMB
	c.peakMem = max(c.peakMem, c.memory)
	c.mu.Unlock()
	ctr, err := c.Backend.Create(ctx, spec)
	if err != nil {
		c.mu.Lock()
		c.memory -= spec.MemoryMB
		c.mu.Unlock()
		return nil, err
	}
	c.created.Add(1)
	c.mu.Lock()
	c.live[ctr.ID()] = spec.MemoryMB
	if spec.Labels["eddy.prewarm"] == "true" {
		c.stems = append(c.stems, ctr)
	}
	c.mu.Unlock()
	return &countedContainer{Container: ctr, b: c}, nil
}

func (c *countingBackend) liveCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.live)
}

func (c *countingBackend) maxMemory() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peakMem
}

type countedContainer struct {
	container.Container
	b *countingBackend
}

func (c *countedContainer) Remove(ctx context.Context) error {
	err := c.Container.Remove(ctx)
	c.b.mu.Lock()
	if mem, ok := c.b.live[c.ID()]; ok && err == nil {
		delete(c.b.live, c.ID())
		c.b.memory -= mem
	}
	c.b.mu.Unlock()
	return err
}
