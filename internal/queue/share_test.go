package queue

import (
	"context"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// shareHarness is a harness whose namespace share is what held and
// wanting say, with the demand publications recorded.
func shareHarness(t *testing.T, limit int, held map[string]int, wanting map[string]bool) (*harness, *[]bool) {
	h := newHarness(t)
	h.q.nsLimit = limit
	var wants []bool
	h.q.d.NamespaceShare = func(context.Context, bool) (map[string]int, map[string]bool, error) {
		return held, wanting, nil
	}
	h.q.d.Want = func(_ context.Context, w bool) error {
		wants = append(wants, w)
		return nil
	}
	return h, &wants
}

// A queue over its fair share while another action of the namespace wants
// one gives containers back: idle (parked) ones at once, busy ones on
// their next fetch (after their current activation), never below the fair
// share; a read taken right after a release does not count it twice; and
// the flooded action does not take the freed room back meanwhile.
func TestGiveBackReleasesOverShare(t *testing.T) {
	held := map[string]int{"hello": 4}
	wanting := map[string]bool{"meek": true}
	h, _ := shareHarness(t, 4, held, wanting)
	h.containers, h.nsOther = 4, 0
	h.q.startCount(h.now) // the queue knows its 4 containers (its decisions made them)
	h.settle()
	h.advance(ShareEvery)
	parked := h.fetch(1, true, true, 0) // an idle container waits for work
	h.tick()                            // an idle holder reads the share
	select {
	case r := <-parked.reply:
		if r.Status != rpc.FetchRelease {
			t.Fatalf("parked fetch answered %+v, want release", r)
		}
	default:
		t.Fatal("the idle container was not released")
	}
	if h.q.release != 1 {
		t.Fatalf("release %d left, want 1 (fair share 2 of 4)", h.q.release)
	}
	h.advance(10 * time.Millisecond)
	if r := <-h.fetch(1, true, true, 0).reply; r.Status != rpc.FetchRelease {
		t.Fatalf("busy container's next fetch: %+v, want release", r)
	}
	// The released containers say goodbye (Alive false).
	h.fetch(1, false, true, 0)
	h.fetch(1, false, true, 0)
	if h.q.released != 2 || h.q.lastCount != 2 {
		t.Fatalf("released %d, count %d; want 2 and 2", h.q.released, h.q.lastCount)
	}
	// A read within the release grace that still shows 4 changes nothing.
	h.advance(ShareEvery)
	h.tick()
	if h.q.release != 0 {
		t.Fatalf("release %d from a read that still counts the released containers", h.q.release)
	}
	if f := h.fetch(1, true, true, 0); len(f.reply) != 0 {
		t.Fatalf("a third container was told %+v", <-f.reply)
	}
	// With a backlog the flooded action stays at its fair share while meek
	// wants (ShareCap), though the namespace has room.
	held["hello"] = 2
	h.containers = 2
	for i := range 20 {
		h.msg(int64(i), 1)
	}
	for range 5 {
		h.advance(DefaultTick)
		h.tick()
	}
	if len(h.creates) != 0 {
		t.Fatalf("%d creations while another action wants its share", len(h.creates))
	}
	// meek has its share: the cap goes and hello scales again.
	held["meek"] = 2
	wanting["meek"] = false
	delete(wanting, "meek")
	held["meek"] = 1
	h.advance(DefaultTick)
	h.tick()
	h.advance(DefaultTick)
	h.tick()
	if len(h.creates) == 0 {
		t.Fatal("no creation once no other action wants a share")
	}
}

// A starved action (the namespace full with another action's containers,
// none of its own) waits for a give-back and publishes its demand when
// the other action holds more than its fair share; when it cannot expect
// one (limit 1), its activations fail at once with the throttle marker.
func TestStarvedActionWaitsForShare(t *testing.T) {
	held := map[string]int{"hog": 4}
	h, wants := shareHarness(t, 4, held, map[string]bool{})
	h.containers, h.nsOther = 0, 4
	h.msg(0, 1)
	for range 4 {
		h.advance(DefaultTick)
		h.tick()
	}
	h.drain()
	if len(h.records) != 0 || len(h.q.buf) != 1 {
		t.Fatalf("%d records, %d buffered: the starved action did not wait for its share", len(h.records), len(h.q.buf))
	}
	if !h.q.wanting || len(*wants) == 0 || !(*wants)[len(*wants)-1] {
		t.Fatalf("demand not published: wanting %v, publications %v", h.q.wanting, *wants)
	}
	// The hog gave one back: the namespace has room, the action gets it.
	held["hog"] = 3
	h.nsOther = 3
	h.advance(DefaultTick)
	h.tick()
	h.advance(DefaultTick)
	h.tick()
	if len(h.creates) != 1 {
		t.Fatalf("%d creations after a give-back, want 1", len(h.creates))
	}
	// The queue empties: the demand is withdrawn.
	h.result(0, true, false)
	if r := <-h.fetch(1, true, false, 0).reply; r.Status != rpc.FetchOK {
		t.Fatalf("fetch %+v", r)
	}
	h.advance(DefaultTick)
	h.tick()
	h.advance(DefaultTick)
	h.tick()
	if h.q.wanting || (*wants)[len(*wants)-1] {
		t.Fatalf("demand not withdrawn: wanting %v, publications %v", h.q.wanting, *wants)
	}

	// Limit 1, held by another action: no share to expect, 429 at once.
	h2, _ := shareHarness(t, 1, map[string]int{"hog": 1}, map[string]bool{})
	h2.containers, h2.nsOther = 0, 1
	h2.msg(0, 1)
	for range 4 {
		h2.advance(DefaultTick)
		h2.tick()
	}
	h2.drain()
	if len(h2.records) != 1 {
		t.Fatalf("%d records with no share to expect, want 1", len(h2.records))
	}
	if th := whisk.ThrottleOfRecord(h2.records[0]); th == nil || th.Allowed != 1 {
		t.Fatalf("record without the throttle marker: %+v", h2.records[0].Annotations)
	}
}

// A creation the creator refused at a limit (another queue took the room
// since the counts) is no failure: the queue stays Running, keeps its
// activations and asks again on fresh counts.
func TestRefusedCreationIsNoFailure(t *testing.T) {
	h := newHarness(t)
	h.msg(0, 1)
	if len(h.creates) != 1 {
		t.Fatalf("%d creations, want 1", len(h.creates))
	}
	h.q.handleResult(h.now, &CreationResult{ID: h.creates[0].ID, Refused: true, Error: "refused at a limit"})
	h.settle()
	h.state(Running)
	if len(h.q.inflight) != 0 || len(h.q.buf) != 1 {
		t.Fatalf("%d in flight, %d buffered after a refusal", len(h.q.inflight), len(h.q.buf))
	}
	if h.creates[0].NamespaceLimit != 100 {
		t.Fatalf("the request carries namespace limit %d, want 100", h.creates[0].NamespaceLimit)
	}
	h.advance(DefaultTick)
	h.tick()
	if len(h.creates) != 2 {
		t.Fatalf("%d creations after the refusal and a tick, want 2", len(h.creates))
	}
}

// An action held back by its own instances limit does not ask the
// namespace for containers it could not use.
func TestNoDemandAtOwnInstancesLimit(t *testing.T) {
	h, wants := shareHarness(t, 4, map[string]int{"hog": 3, "hello": 1}, map[string]bool{})
	h.q.meta.Limits.Instances = 1
	h.containers, h.nsOther = 1, 3
	for i := range 10 {
		h.msg(int64(i), 1)
	}
	for range 5 {
		h.advance(DefaultTick)
		h.tick()
	}
	if h.q.wanting || len(*wants) != 0 {
		t.Fatalf("wanting %v, publications %v at its own instances limit", h.q.wanting, *wants)
	}
	// Without the instances limit it wants its share (2 of 4).
	h.q.meta.Limits.Instances = 0
	for range 3 {
		h.advance(DefaultTick)
		h.tick()
	}
	if !h.q.wanting {
		t.Fatal("a flooded action below its fair share does not want it")
	}
}

// A steady queue (containers, no backlog, wanting nothing) reads the share
// only to give back: it says so (giveBackOnly), and an answer without
// counts (nobody wants a share, learnt from the demand keys alone) neither
// releases a container nor counts as a share to decide on.
func TestSteadyQueueReadsGiveBackOnly(t *testing.T) {
	h := newHarness(t)
	h.q.nsLimit = 4
	var modes []bool
	h.q.d.NamespaceShare = func(_ context.Context, giveBackOnly bool) (map[string]int, map[string]bool, error) {
		modes = append(modes, giveBackOnly)
		if giveBackOnly {
			return nil, map[string]bool{}, nil
		}
		return map[string]int{"hello": 4}, map[string]bool{}, nil
	}
	h.q.d.Want = func(context.Context, bool) error { return nil }
	h.containers = 4
	h.advance(ShareEvery)
	parked := h.fetch(1, true, true, 0)
	h.tick()
	h.advance(10 * time.Millisecond)
	h.tick()
	if len(modes) == 0 || !modes[len(modes)-1] {
		t.Fatalf("a steady queue read the share with giveBackOnly %v, want true", modes)
	}
	if len(parked.reply) != 0 {
		t.Fatalf("a give-back-only answer without demand released a container: %+v", <-parked.reply)
	}
	if h.q.release != 0 || h.q.shareIsFresh(h.now, shareFresh) {
		t.Fatalf("release %d, share fresh %v after a read without counts; want 0, false", h.q.release, h.q.shareIsFresh(h.now, shareFresh))
	}
}

// A queue that holds containers and has no backlog reads the share every
// ShareEvery to give idle containers back, and nothing else: no count of
// containers (its decisions count afresh), so idle warm containers cost
// their queue one read of the namespace's demand a second. An arrival
// during such a read still gets its decision on fresh counts.
func TestGiveBackReadDoesNotCount(t *testing.T) {
	shares := 0
	h, _ := shareHarness(t, 4, map[string]int{"hello": 1}, map[string]bool{})
	h.q.d.NamespaceShare = func(context.Context, bool) (map[string]int, map[string]bool, error) {
		shares++
		return nil, map[string]bool{}, nil
	}
	h.containers = 1
	h.q.startCount(h.now)
	h.settle()
	counts := h.counts
	for range 3 {
		h.advance(ShareEvery)
		h.fetch(1, true, true, 0) // a warm container parks
		h.tick()
	}
	if shares != 3 || h.counts != counts {
		t.Fatalf("%d share reads and %d counts in 3 give-back rounds; want 3 and none", shares, h.counts-counts)
	}
	// A decision that waits for counts (the revision changed) while a
	// share read is in flight gets them once the share read is back.
	h.advance(ShareEvery)
	h.q.tick(h.now) // a share read in flight
	h.containers = 0
	h.q.buf = append(h.q.buf, &entry{msg: activation("00000000000000000000000000000009", 1), enq: h.now})
	h.q.counted = false
	h.q.decide(h.now)
	creates := len(h.creates)
	h.settle()
	if h.counts == counts || len(h.creates) == creates {
		t.Fatalf("after the share read: %d counts, %d creations; want a count and a creation", h.counts-counts, len(h.creates)-creates)
	}
}
