// Package bustest is the contract suite of bus.Bus: every implementation's
// tests call Run with a function that returns a bus. It tests only what
// bus.go promises, so that it holds for the in-memory bus and for Kafka
// alike: it does not assume offsets start at 0 or are consecutive, that a
// Poll returns everything available, or which of the two allowed behaviours
// a second Subscribe of the same group has, nor that records every known group
// committed are still there for a group that subscribes later (retention).
// Topic names are unique per test, so the buses may share a backing cluster.
package bustest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Timeouts: long enough for a slow broker, short enough to fail fast.
const (
	waitFor   = 10 * time.Second       // something that must happen
	quietFor  = 200 * time.Millisecond // something that must not happen
	settleFor = 50 * time.Millisecond  // let a goroutine block
)

// Run runs the contract suite. newBus returns a bus for one test; it may
// register its cleanup (closing the bus) with t.Cleanup. The suite closes
// the bus itself in the tests that need it closed.
func Run(t *testing.T, newBus func(t *testing.T) bus.Bus) {
	tests := []struct {
		name string
		fn   func(*testing.T, bus.Bus)
	}{
		{"MissingTopic", testMissingTopic},
		{"EnsureTopicIdempotent", testEnsureTopicIdempotent},
		{"Order", testOrder},
		{"PollMax", testPollMax},
		{"ValueCopied", testValueCopied},
		{"GroupsIndependent", testGroupsIndependent},
		{"CommitResumesAfterCommitted", testCommitResumes},
		{"UncommittedRedelivered", testUncommittedRedelivered},
		{"CommitLast", testCommitLast},
		{"PollWakesOnPublish", testPollWakesOnPublish},
		{"PollContext", testPollContext},
		{"DeleteTopic", testDeleteTopic},
		{"SecondSubscribe", testSecondSubscribe},
		{"ClosedConsumer", testClosedConsumer},
		{"CloseBus", testCloseBus},
		{"ConcurrentPublishers", testConcurrentPublishers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newBus(t))
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// topicName returns a topic name unique to the test (Kafka's alphabet).
func topicName(t *testing.T, suffix string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 150 {
		name = name[len(name)-150:]
	}
	return fmt.Sprintf("bustest.%s.%s.%08x", name, suffix, rand.Uint32())
}

func newTopic(t *testing.T, b bus.Bus) string {
	t.Helper()
	topic := topicName(t, "t")
	if err := b.EnsureTopic(ctxFor(t), topic); err != nil {
		t.Fatalf("EnsureTopic(%s): %v", topic, err)
	}
	return topic
}

func publish(t *testing.T, b bus.Bus, topic string, values ...string) {
	t.Helper()
	ctx := ctxFor(t)
	for _, v := range values {
		if err := b.Publish(ctx, topic, []byte(v)); err != nil {
			t.Fatalf("Publish(%s, %q): %v", topic, v, err)
		}
	}
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

func subscribe(t *testing.T, b bus.Bus, topic, group string) bus.Consumer {
	t.Helper()
	c, err := b.Subscribe(ctxFor(t), topic, group)
	if err != nil {
		t.Fatalf("Subscribe(%s, %s): %v", topic, group, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pollN polls until it has n records, checking topic and offset order.
func pollN(t *testing.T, c bus.Consumer, topic string, n int) []bus.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	var out []bus.Record
	for len(out) < n {
		recs, err := c.Poll(ctx, n-len(out))
		if err != nil {
			t.Fatalf("Poll after %d of %d records: %v", len(out), n, err)
		}
		if len(recs) == 0 {
			t.Fatalf("Poll returned no records and no error")
		}
		if len(recs) > n-len(out) {
			t.Fatalf("Poll(max %d) returned %d records", n-len(out), len(recs))
		}
		out = append(out, recs...)
	}
	for i, r := range out {
		if r.Topic != topic {
			t.Errorf("record %d: Topic = %q, want %q", i, r.Topic, topic)
		}
		if i > 0 && r.Offset <= out[i-1].Offset {
			t.Errorf("record %d: offset %d not after %d", i, r.Offset, out[i-1].Offset)
		}
	}
	return out
}

func values(recs []bus.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

func wantValues(t *testing.T, recs []bus.Record, want []string) {
	t.Helper()
	got := values(recs)
	if strings.Join(got, ",") != strings.Join(want, ",") || len(got) != len(want) {
		t.Fatalf("values = %q, want %q", got, want)
	}
}

// expectQuiet checks that Poll delivers nothing for a while.
func expectQuiet(t *testing.T, c bus.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), quietFor)
	defer cancel()
	recs, err := c.Poll(ctx, 0)
	if err == nil {
		t.Fatalf("Poll delivered %q, want nothing", values(recs))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Poll: %v, want the context's deadline", err)
	}
}

func wantKind(t *testing.T, what string, err error, kind whisk.Kind) {
	t.Helper()
	if err == nil || whisk.KindOf(err) != kind {
		t.Fatalf("%s: err = %v (kind %v), want kind %v", what, err, whisk.KindOf(err), kind)
	}
}

// pollAsync runs Poll in a goroutine and returns its result channel.
func pollAsync(c bus.Consumer, ctx context.Context) <-chan pollResult {
	ch := make(chan pollResult, 1)
	go func() {
		recs, err := c.Poll(ctx, 0)
		ch <- pollResult{recs, err}
	}()
	return ch
}

type pollResult struct {
	recs []bus.Record
	err  error
}

func await(t *testing.T, ch <-chan pollResult, what string) pollResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitFor):
		t.Fatalf("%s: Poll still blocked after %v", what, waitFor)
		return pollResult{}
	}
}

// ---- tests ----

func testMissingTopic(t *testing.T, b bus.Bus) {
	ctx := ctxFor(t)
	topic := topicName(t, "missing")
	wantKind(t, "Publish to a missing topic", b.Publish(ctx, topic, []byte("x")), whisk.NotFound)
	_, err := b.Subscribe(ctx, topic, "g")
	wantKind(t, "Subscribe to a missing topic", err, whisk.NotFound)
	if err := b.DeleteTopic(ctx, topic); err != nil {
		t.Fatalf("DeleteTopic of a missing topic: %v", err)
	}
}

func testEnsureTopicIdempotent(t *testing.T, b bus.Bus) {
	ctx := ctxFor(t)
	topic := newTopic(t, b)
	if err := b.EnsureTopic(ctx, topic); err != nil {
		t.Fatalf("second EnsureTopic: %v", err)
	}
	publish(t, b, topic, "a")
	if err := b.EnsureTopic(ctx, topic); err != nil {
		t.Fatalf("EnsureTopic of a topic with records: %v", err)
	}
	publish(t, b, topic, "b")
	wantValues(t, pollN(t, subscribe(t, b, topic, "g"), topic, 2), []string{"a", "b"})
}

func testOrder(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b)
	want := seq("m", 200)
	publish(t, b, topic, want...)
	wantValues(t, pollN(t, subscribe(t, b, topic, "g"), topic, len(want)), want)
}

func testPollMax(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b)
	publish(t, b, topic, seq("m", 10)...)
	c := subscribe(t, b, topic, "g")
	var got []bus.Record
	for len(got) < 10 {
		recs, err := c.Poll(ctxFor(t), 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 || len(recs) > 3 {
			t.Fatalf("Poll(max 3) returned %d records", len(recs))
		}
		got = append(got, recs...)
	}
	wantValues(t, got, seq("m", 10))
}

func testValueCopied(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b)
	buf := []byte("original")
	if err := b.Publish(ctxFor(t), topic, buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXXX")
	publish(t, b, topic, "")
	recs := pollN(t, subscribe(t, b, topic, "g"), topic, 2)
	wantValues(t, recs, []string{"original", ""})
}

func testGroupsIndependent(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b)
	publish(t, b, topic, seq("m", 5)...)
	// Both groups subscribe before either commits: records every known
	// group committed may be gone (retention), which bus.go allows.
	a := subscribe(t, b, topic, "a")
	c := subscribe(t, b, topic, "b")
	recs := pollN(t, a, topic, 5)
	if err := a.Commit(ctxFor(t), recs[4].Offset); err != nil {
		t.Fatal(err)
	}
	// Group b has its own position, at the start.
	wantValues(t, pollN(t, c, topic, 5), seq("m", 5))
	// Both see new records.
	publish(t, b, topic, "n")
	wantValues(t, pollN(t, a, topic, 1), []string{"n"})
	wantValues(t, pollN(t, c, topic, 1), []string{"n"})
}

func testCommitResumes(t *testing.T, b bus.Bus) {
	ctx := ctxFor(t)
	topic := newTopic(t, b)
	publish(t, b, topic, seq("m", 6)...)
	c1 := subscribe(t, b, topic, "g")
	recs := pollN(t, c1, topic, 6)
	if err := c1.Commit(ctx, recs[2].Offset); err != nil {
		t.Fatal(err)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	// The next consumer of the group starts after the committed record:
	// m3..m5 were polled but not committed, so they come again.
	c2 := subscribe(t, b, topic, "g")
	again := pollN(t, c2, topic, 3)
	wantValues(t, again, []string{"m3", "m4", "m5"})
	for i, r := range again {
		if r.Offset != recs[3+i].Offset {
			t.Errorf("redelivered m%d at offset %d, first delivered at %d", 3+i, r.Offset, recs[3+i].Offset)
		}
	}
	// Commit is cumulative: committing m5 covers m3 and m4.
	if err := c2.Commit(ctx, again[2].Offset); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	publish(t, b, topic, "new")
	wantValues(t, pollN(t, subscribe(t, b, topic, "g"), topic, 1), []string{"new"})
}

func testUncommittedRedelivered(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b)
	publish(t, b, topic, seq("m", 4)...)
	c1 := subscribe(t, b, topic, "g")
	pollN(t, c1, topic, 4)
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	wantValues(t, pollN(t, subscribe(t, b, topic, "g"), topic, 4), seq("m", 4))
}

func testCommitLast(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b)
	publish(t, b, topic, "a", "b")
	c1 := subscribe(t, b, topic, "g")
	recs := pollN(t, c1, topic, 2)
	if err := c1.Commit(ctxFor(t), recs[1].Offset); err != nil {
		t.Fatal(err)
	}
	// Nothing more for this consumer.
	expectQuiet(t, c1)
	c1.Close()
	// Nor for the group's next consumer, until something is published.
	c2 := subscribe(t, b, topic, "g")
	expectQuiet(t, c2)
	publish(t, b, topic, "c")
	got := pollN(t, c2, topic, 1)
	wantValues(t, got, []string{"c"})
	if got[0].Offset <= recs[1].Offset {
		t.Errorf("new record at offset %d, not after %d", got[0].Offset, recs[1].Offset)
	}
}

func testPollWakesOnPublish(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b)
	c := subscribe(t, b, topic, "g")
	for i := range 3 {
		ch := pollAsync(c, ctxFor(t))
		time.Sleep(settleFor)
		select {
		case r := <-ch:
			t.Fatalf("Poll returned before a publish: %q, %v", values(r.recs), r.err)
		default:
		}
		v := fmt.Sprint("wake", i)
		publish(t, b, topic, v)
		r := await(t, ch, "after publish")
		if r.err != nil {
			t.Fatal(r.err)
		}
		wantValues(t, r.recs, []string{v})
	}
}

func testPollContext(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b)
	c := subscribe(t, b, topic, "g")

	ctx, cancel := context.WithCancel(t.Context())
	ch := pollAsync(c, ctx)
	time.Sleep(settleFor)
	cancel()
	r := await(t, ch, "after cancel")
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Poll after cancel: %q, %v; want context.Canceled", values(r.recs), r.err)
	}

	dctx, dcancel := context.WithTimeout(t.Context(), settleFor)
	defer dcancel()
	start := time.Now()
	recs, err := c.Poll(dctx, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Poll past its deadline: %q, %v; want context.DeadlineExceeded", values(recs), err)
	}
	if el := time.Since(start); el > waitFor {
		t.Errorf("Poll returned %v after its deadline", el)
	}

	// The consumer still works after a cancelled Poll.
	publish(t, b, topic, "after")
	wantValues(t, pollN(t, c, topic, 1), []string{"after"})
}

func testDeleteTopic(t *testing.T, b bus.Bus) {
	ctx := ctxFor(t)
	topic := newTopic(t, b)
	publish(t, b, topic, "old")
	c := subscribe(t, b, topic, "g")
	pollN(t, c, topic, 1)
	ch := pollAsync(c, ctx)
	time.Sleep(settleFor)
	if err := b.DeleteTopic(ctx, topic); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	r := await(t, ch, "after DeleteTopic")
	if r.err == nil || errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("Poll of a deleted topic: %q, %v; want an error", values(r.recs), r.err)
	}
	wantKind(t, "Publish after DeleteTopic", b.Publish(ctx, topic, []byte("x")), whisk.NotFound)
	_, err := b.Subscribe(ctx, topic, "g2")
	wantKind(t, "Subscribe after DeleteTopic", err, whisk.NotFound)
	if err := b.DeleteTopic(ctx, topic); err != nil {
		t.Fatalf("second DeleteTopic: %v", err)
	}
	// Created again, the topic starts empty.
	if err := b.EnsureTopic(ctx, topic); err != nil {
		t.Fatalf("EnsureTopic after DeleteTopic: %v", err)
	}
	publish(t, b, topic, "new")
	wantValues(t, pollN(t, subscribe(t, b, topic, "fresh"), topic, 1), []string{"new"})
}

// testSecondSubscribe accepts both behaviours bus.go allows: an immediate
// Conflict, or waiting (here until the context ends).
func testSecondSubscribe(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b)
	publish(t, b, topic, "a", "b")
	c1 := subscribe(t, b, topic, "g")
	other := subscribe(t, b, topic, "other")
	recs := pollN(t, c1, topic, 1)
	if err := c1.Commit(ctxFor(t), recs[0].Offset); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), quietFor)
	c2, err := b.Subscribe(ctx, topic, "g")
	cancel()
	if err == nil {
		c2.Close()
		t.Fatal("a second Subscribe of the same group succeeded while the first consumer is open")
	}
	if !whisk.IsKind(err, whisk.Conflict) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Subscribe: %v; want kind Conflict or the context's deadline", err)
	}
	// Another group is not affected.
	wantValues(t, pollN(t, other, topic, 2), []string{"a", "b"})
	// The first consumer still works, and after it closes the group can be
	// subscribed again, from after the commit.
	publish(t, b, topic, "c")
	c1.Close()
	wantValues(t, pollN(t, subscribe(t, b, topic, "g"), topic, 2), []string{"b", "c"})
}

func testClosedConsumer(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b)
	publish(t, b, topic, "a")
	c := subscribe(t, b, topic, "g")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	recs, err := c.Poll(ctx, 0)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Poll of a closed consumer: %q, %v; want an error", values(recs), err)
	}
}

func testCloseBus(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b)
	c := subscribe(t, b, topic, "g")
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	recs, err := c.Poll(ctx, 0)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Poll after the bus closed: %q, %v; want an error", values(recs), err)
	}
}

func testConcurrentPublishers(t *testing.T, b bus.Bus) {
	const publishers, each = 8, 250
	topic := newTopic(t, b)
	c := subscribe(t, b, topic, "g")

	// A consumer reads while the publishers write.
	done := make(chan []bus.Record, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), waitFor)
		defer cancel()
		var out []bus.Record
		for len(out) < publishers*each {
			recs, err := c.Poll(ctx, 0)
			if err != nil {
				break
			}
			out = append(out, recs...)
		}
		done <- out
	}()

	ctx := ctxFor(t)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				if err := b.Publish(ctx, topic, fmt.Appendf(nil, "%d/%d", p, i)); err != nil {
					t.Errorf("publisher %d: %v", p, err)
					return
				}
			}
		})
	}
	wg.Wait()
	recs := <-done
	if len(recs) != publishers*each {
		t.Fatalf("consumed %d records, want %d", len(recs), publishers*each)
	}
	next := make([]int, publishers) // each publisher's records arrive in its order
	seen := map[int64]bool{}
	for i, r := range recs {
		if seen[r.Offset] {
			t.Fatalf("offset %d delivered twice", r.Offset)
		}
		seen[r.Offset] = true
		if i > 0 && r.Offset <= recs[i-1].Offset {
			t.Fatalf("offset %d after %d", r.Offset, recs[i-1].Offset)
		}
		var p, n int
		if _, err := fmt.Sscanf(string(r.Value), "%d/%d", &p, &n); err != nil || p < 0 || p >= publishers {
			t.Fatalf("bad record %q", r.Value)
		}
		if n != next[p] {
			t.Fatalf("publisher %d: got record %d, want %d", p, n, next[p])
		}
		next[p]++
	}
}
