package scheduler

import (
	"errors"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// A reservation counts against its invoker for reserveWindow, unless its
// container's ack came: then for settleWindow after the ack (the invoker's
// own advertisement counts the memory by then), and not at all once its
// attempt failed.
func TestReservationSettlesOnAck(t *testing.T) {
	c := &creator{reserved: map[string][]reservation{}}
	t0 := time.Unix(1_700_000_000, 0)
	c.reserved["inv"] = []reservation{{id: "a", mb: 128, at: t0}, {id: "b", mb: 256, at: t0}, {id: "c", mb: 512, at: t0}}
	if f, k := c.reservedLocked("inv", t0.Add(time.Second)); f+k != 896 {
		t.Fatalf("reserved %d MB, want 896", f+k)
	}
	c.settle("inv", "a", t0.Add(time.Second))
	c.unreserve("inv", "c")
	if f, k := c.reservedLocked("inv", t0.Add(time.Second+settleWindow/2)); f+k != 384 {
		t.Fatalf("reserved %d MB just after a's ack, want 384 (a and b)", f+k)
	}
	if f, k := c.reservedLocked("inv", t0.Add(time.Second+settleWindow)); f+k != 256 {
		t.Fatalf("reserved %d MB after a settled, want 256 (b only: no ack yet)", f+k)
	}
	if f, k := c.reservedLocked("inv", t0.Add(reserveWindow)); f+k != 0 {
		t.Fatalf("reserved %d MB after reserveWindow, want 0", f+k)
	}
	// An ack late in the window does not lengthen it.
	c.reserved["inv"] = []reservation{{id: "d", mb: 128, at: t0}}
	c.settle("inv", "d", t0.Add(reserveWindow-time.Millisecond))
	if f, k := c.reservedLocked("inv", t0.Add(reserveWindow)); f+k != 0 {
		t.Fatalf("reserved %d MB: a late ack lengthened the reservation", f+k)
	}
}

// The headroom: a namespace that already uses containers does not get an
// invoker's last eighth of memory; one that uses none does; idle warm
// containers count as room (tier 1), after free memory (tier 0).
func TestPickHeadroomAndReclaim(t *testing.T) {
	c := &creator{s: &Scheduler{d: Deps{Now: time.Now}}, reserved: map[string][]reservation{}}
	full := []whisk.InvokerInfo{{ID: "a", Status: whisk.InvokerUp, UserMemory: 2048, FreeMemory: 256}}
	if _, _, err := c.pick("x", 256, map[string]bool{}, full, 7, ""); !errors.Is(err, errHeadroom) {
		t.Fatalf("a namespace holding 7 took the headroom: %v", err)
	}
	if iid, room, err := c.pick("y", 256, map[string]bool{}, full, 0, ""); err != nil || iid != "a" || room != 0 {
		t.Fatalf("a namespace holding none: %q %d %v, want the headroom", iid, room, err)
	}
	// y's reservation is the last 256 MB: nothing is left for anyone.
	if _, _, err := c.pick("z", 256, map[string]bool{}, full, 0, ""); !errors.Is(err, errNoInvoker) {
		t.Fatalf("after the headroom went: %v, want no invoker", err)
	}
	two := []whisk.InvokerInfo{
		{ID: "idle", Status: whisk.InvokerUp, UserMemory: 2048, FreeMemory: 0, IdleMemory: 2048},
		{ID: "free", Status: whisk.InvokerUp, UserMemory: 2048, FreeMemory: 768},
	}
	if iid, room, err := c.pick("w", 256, map[string]bool{}, two, 3, ""); err != nil || iid != "free" || room != 256 {
		t.Fatalf("free memory first: %q %d %v, want the invoker to keep 256 MB", iid, room, err)
	}
	if iid, _, err := c.pick("v", 512, map[string]bool{}, two, 3, ""); err != nil || iid != "idle" {
		t.Fatalf("then idle warm containers: %q %v", iid, err)
	}
	// A flooding namespace's creations in flight (made under the
	// headroom) do not keep a namespace holding none from the headroom;
	// a headroom-free creation in flight does.
	c2 := &creator{s: &Scheduler{d: Deps{Now: time.Now}}, reserved: map[string][]reservation{}}
	held := []whisk.InvokerInfo{{ID: "a", Status: whisk.InvokerUp, UserMemory: 2048, FreeMemory: 0, IdleMemory: 512}}
	if _, room, err := c2.pick("flood", 256, map[string]bool{}, held, 6, ""); err != nil || room != 256 {
		t.Fatalf("the flood's creation: room %d, %v", room, err)
	}
	if _, _, err := c2.pick("flood2", 256, map[string]bool{}, held, 7, ""); !errors.Is(err, errHeadroom) {
		t.Fatalf("the flood's second creation took the headroom: %v", err)
	}
	if iid, room, err := c2.pick("newcomer", 256, map[string]bool{}, held, 0, ""); err != nil || iid != "a" || room != 0 {
		t.Fatalf("a namespace holding none, with the flood's creation in flight: %q %d %v, want the headroom", iid, room, err)
	}
	if _, _, err := c2.pick("third", 256, map[string]bool{}, held, 0, ""); !errors.Is(err, errNoInvoker) {
		t.Fatalf("the newcomer's reservation did not count: %v", err)
	}
}
