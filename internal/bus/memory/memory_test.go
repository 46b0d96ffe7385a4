package memory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/bus/bustest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

func TestContract(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bus.Bus {
		b := New(nil)
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func setup(t *testing.T, topic string, n int) *Bus {
	t.Helper()
	b := New(nil)
	t.Cleanup(func() { b.Close() })
	if err := b.EnsureTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := b.Publish(t.Context(), topic, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func sub(t *testing.T, b *Bus, topic, group string) bus.Consumer {
	t.Helper()
	c, err := b.Subscribe(t.Context(), topic, group)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// held returns the first retained offset and how many records are held.
func held(b *Bus, topic string) (base int64, n int) {
	b.mu.RLock()
	tp := b.topics[topic]
	b.mu.RUnlock()
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.base, len(tp.values) - tp.head
}

func TestOffsetsFromZero(t *testing.T) {
	b := setup(t, "t", 3)
	recs, err := sub(t, b, "t", "g").Poll(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.Offset != int64(i) {
			t.Errorf("record %d at offset %d", i, r.Offset)
		}
	}
}

func TestSecondSubscribeConflict(t *testing.T) {
	b := setup(t, "t", 0)
	c := sub(t, b, "t", "g")
	_, err := b.Subscribe(t.Context(), "t", "g")
	if !whisk.IsKind(err, whisk.Conflict) {
		t.Fatalf("second Subscribe: %v, want Conflict", err)
	}
	c.Close()
	sub(t, b, "t", "g").Close()
}

func TestTrim(t *testing.T) {
	ctx := t.Context()
	b := setup(t, "t", 10)
	// Nobody subscribed yet: everything is kept.
	if base, n := held(b, "t"); base != 0 || n != 10 {
		t.Fatalf("before any group: base %d, %d held; want 0, 10", base, n)
	}
	a, c := sub(t, b, "t", "a"), sub(t, b, "t", "c")
	if err := a.Commit(ctx, 8); err != nil {
		t.Fatal(err)
	}
	// c never committed: nothing goes.
	if base, n := held(b, "t"); base != 0 || n != 10 {
		t.Fatalf("one group committed: base %d, %d held; want 0, 10", base, n)
	}
	if err := c.Commit(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if base, n := held(b, "t"); base != 4 || n != 6 {
		t.Fatalf("both committed: base %d, %d held; want 4, 6", base, n)
	}
	// A closed group still counts: its next consumer must get m4.
	c.Close()
	if err := a.Commit(ctx, 9); err != nil {
		t.Fatal(err)
	}
	if base, n := held(b, "t"); base != 4 || n != 6 {
		t.Fatalf("closed group: base %d, %d held; want 4, 6", base, n)
	}
	c = sub(t, b, "t", "c")
	recs, err := c.Poll(ctx, 1)
	if err != nil || len(recs) != 1 || recs[0].Offset != 4 || string(recs[0].Value) != "m4" {
		t.Fatalf("next consumer of c: %v, %v; want m4 at 4", recs, err)
	}
	if err := c.Commit(ctx, 9); err != nil {
		t.Fatal(err)
	}
	if base, n := held(b, "t"); base != 10 || n != 0 {
		t.Fatalf("all committed: base %d, %d held; want 10, 0", base, n)
	}
	// A new group starts at the oldest retained record; offsets continue.
	if err := b.Publish(ctx, "t", []byte("m10")); err != nil {
		t.Fatal(err)
	}
	recs, err = sub(t, b, "t", "late").Poll(ctx, 0)
	if err != nil || len(recs) != 1 || recs[0].Offset != 10 {
		t.Fatalf("late group: %v, %v; want m10 at 10", recs, err)
	}
}

func TestCommitEdges(t *testing.T) {
	ctx := t.Context()
	b := setup(t, "t", 5)
	c := sub(t, b, "t", "g")
	if err := c.Commit(ctx, 5); !whisk.IsKind(err, whisk.Invalid) {
		t.Fatalf("Commit past the end: %v, want Invalid", err)
	}
	// Commit before polling skips the committed records.
	if err := c.Commit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	recs, err := c.Poll(ctx, 1)
	if err != nil || recs[0].Offset != 3 {
		t.Fatalf("Poll after Commit(2): %v, %v; want offset 3", recs, err)
	}
	// Commits never move back.
	if err := c.Commit(ctx, 0); err != nil {
		t.Fatal(err)
	}
	c.Close()
	recs, err = sub(t, b, "t", "g").Poll(ctx, 1)
	if err != nil || recs[0].Offset != 3 {
		t.Fatalf("next consumer: %v, %v; want offset 3", recs, err)
	}
}

func TestCloseWakesPoll(t *testing.T) {
	b := setup(t, "t", 0)
	c := sub(t, b, "t", "g")
	done := make(chan error, 1)
	go func() {
		_, err := c.Poll(context.Background(), 0)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Poll of a closed consumer returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Poll")
	}
}

func TestErrorKinds(t *testing.T) {
	ctx := t.Context()
	b := setup(t, "t", 1)
	c := sub(t, b, "t", "g")
	if err := b.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(ctx, 0); !whisk.IsKind(err, whisk.NotFound) {
		t.Errorf("Poll of a deleted topic: %v, want NotFound", err)
	}
	if err := c.Commit(ctx, 0); !whisk.IsKind(err, whisk.NotFound) {
		t.Errorf("Commit on a deleted topic: %v, want NotFound", err)
	}
	if err := b.EnsureTopic(ctx, ""); !whisk.IsKind(err, whisk.Invalid) {
		t.Errorf("EnsureTopic(\"\"): %v, want Invalid", err)
	}
	b.Close()
	if err := b.Publish(ctx, "t", nil); !whisk.IsKind(err, whisk.Unavailable) {
		t.Errorf("Publish after Close: %v, want Unavailable", err)
	}
	if err := b.EnsureTopic(ctx, "t"); !whisk.IsKind(err, whisk.Unavailable) {
		t.Errorf("EnsureTopic after Close: %v, want Unavailable", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	b2 := setup(t, "t", 0)
	if _, err := sub(t, b2, "t", "g").Poll(ctx2, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Poll with a cancelled context: %v", err)
	}
}

// BenchmarkPublishPoll publishes, polls and commits one record in one goroutine.
func BenchmarkPublishPoll(b *testing.B) {
	ctx := context.Background()
	bs := New(nil)
	defer bs.Close()
	bs.EnsureTopic(ctx, "t")
	c, _ := bs.Subscribe(ctx, "t", "g")
	v := make([]byte, 256)
	b.ReportAllocs()
	for b.Loop() {
		if err := bs.Publish(ctx, "t", v); err != nil {
			b.Fatal(err)
		}
		recs, err := c.Poll(ctx, 0)
		if err != nil || len(recs) != 1 {
			b.Fatal(recs, err)
		}
		if err := c.Commit(ctx, recs[0].Offset); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoundTrip is a request/reply across goroutines, as the controller
// and a queue use the bus: publish a request, a consumer blocked in Poll
// wakes and publishes the reply to another topic, which the first goroutine
// polls.
func BenchmarkRoundTrip(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bs := New(nil)
	defer bs.Close()
	bs.EnsureTopic(ctx, "req")
	bs.EnsureTopic(ctx, "rep")
	reqs, _ := bs.Subscribe(ctx, "req", "g")
	reps, _ := bs.Subscribe(ctx, "rep", "g")
	go func() {
		for {
			recs, err := reqs.Poll(ctx, 0)
			if err != nil {
				return
			}
			for _, r := range recs {
				bs.Publish(ctx, "rep", r.Value)
			}
			reqs.Commit(ctx, recs[len(recs)-1].Offset)
		}
	}()
	v := make([]byte, 256)
	b.ReportAllocs()
	for b.Loop() {
		if err := bs.Publish(ctx, "req", v); err != nil {
			b.Fatal(err)
		}
		recs, err := reps.Poll(ctx, 0)
		if err != nil || len(recs) != 1 {
			b.Fatal(recs, err)
		}
		reps.Commit(ctx, recs[0].Offset)
	}
}

// TestRandomAgainstModel drives two groups with random publishes, polls,
// commits and consumer restarts, and checks every delivery against a model
// of the log; it exercises trimming and compaction of the record array.
func TestRandomAgainstModel(t *testing.T) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(1, 2))
	b := setup(t, "t", 0)
	type gstate struct {
		c         bus.Consumer
		committed int64 // next offset after the last commit
		pos       int64 // next offset this consumer delivers
	}
	groups := []*gstate{{}, {}}
	for i, g := range groups {
		g.c = sub(t, b, "t", fmt.Sprint("g", i))
	}
	var published int64
	for step := range 20000 {
		g := groups[rng.IntN(len(groups))]
		switch op := rng.IntN(10); {
		case op < 4:
			for range rng.IntN(50) {
				if err := b.Publish(ctx, "t", fmt.Appendf(nil, "%d", published)); err != nil {
					t.Fatal(err)
				}
				published++
			}
		case op < 7:
			if g.pos == published {
				continue
			}
			lim := rng.IntN(40)
			recs, err := g.c.Poll(ctx, lim)
			if err != nil {
				t.Fatal(err)
			}
			want := published - g.pos
			if lim > 0 {
				want = min(want, int64(lim))
			}
			if int64(len(recs)) != want {
				t.Fatalf("step %d: Poll(%d) = %d records, want %d", step, lim, len(recs), want)
			}
			for _, r := range recs {
				if r.Offset != g.pos || string(r.Value) != fmt.Sprint(g.pos) {
					t.Fatalf("step %d: got %q at %d, want %d", step, r.Value, r.Offset, g.pos)
				}
				g.pos++
			}
		case op < 9:
			if g.pos == g.committed {
				continue
			}
			off := g.committed + rng.Int64N(g.pos-g.committed)
			if err := g.c.Commit(ctx, off); err != nil {
				t.Fatal(err)
			}
			g.committed = off + 1
		default:
			g.c.Close()
			g.c = sub(t, b, "t", fmt.Sprint("g", slices.Index(groups, g)))
			g.pos = g.committed
		}
		base, n := held(b, "t")
		low := min(groups[0].committed, groups[1].committed)
		if base != low || base+int64(n) != published {
			t.Fatalf("step %d: held [%d, %d), want [%d, %d)", step, base, base+int64(n), low, published)
		}
	}
}

// TestNotify: Notify answers ready at once while a Poll would not block,
// and otherwise calls back exactly once, on the next Publish, consumer
// Close, DeleteTopic or Bus.Close; a Poll or a later Notify drops the
// callback.
func TestNotify(t *testing.T) {
	ctx := context.Background()
	calls := 0
	f := func() { calls++ }
	check := func(what string, want int) {
		t.Helper()
		if calls != want {
			t.Fatalf("%s: %d callbacks, want %d", what, calls, want)
		}
	}
	b := setup(t, "t", 1)
	c := sub(t, b, "t", "g").(*consumer)
	if !c.Notify(f) {
		t.Fatal("Notify with a record to poll: not ready")
	}
	if _, err := c.Poll(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if c.Notify(f) {
		t.Fatal("Notify with nothing to poll: ready")
	}
	check("before a publish", 0)
	if err := b.Publish(ctx, "t", []byte("x")); err != nil {
		t.Fatal(err)
	}
	check("after a publish", 1)
	if err := b.Publish(ctx, "t", []byte("y")); err != nil {
		t.Fatal(err)
	}
	check("a second publish", 1) // once
	if !c.Notify(f) {
		t.Fatal("Notify after publishes: not ready")
	}
	if recs, err := c.Poll(ctx, 0); err != nil || len(recs) != 2 {
		t.Fatalf("poll: %d records, %v", len(recs), err)
	}

	// A Poll drops the callback.
	if c.Notify(f) {
		t.Fatal("Notify: ready")
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	if _, err := c.Poll(pctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("poll of an empty topic: %v", err)
	}
	cancel()
	if err := b.Publish(ctx, "t", []byte("z")); err != nil {
		t.Fatal(err)
	}
	check("a publish after a Poll dropped the callback", 1)
	if _, err := c.Poll(ctx, 0); err != nil {
		t.Fatal(err)
	}

	// Close of the consumer calls back; a closed consumer is ready.
	if err := c.Commit(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if c.Notify(f) {
		t.Fatal("Notify: ready")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	check("after the consumer's Close", 2)
	if !c.Notify(f) {
		t.Fatal("Notify of a closed consumer: not ready")
	}

	// DeleteTopic and Bus.Close call back too.
	c = sub(t, b, "t", "g").(*consumer)
	if c.Notify(f) {
		t.Fatal("Notify: ready")
	}
	if err := b.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	check("after DeleteTopic", 3)
	if !c.Notify(f) {
		t.Fatal("Notify after DeleteTopic: not ready")
	}
	if err := b.EnsureTopic(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	c = sub(t, b, "u", "g").(*consumer)
	if c.Notify(f) {
		t.Fatal("Notify: ready")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	check("after Bus.Close", 4)
}
