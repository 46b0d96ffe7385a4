package scheduler

import (
	"testing"
	"time"
)

// A reservation counts against its invoker for reserveWindow, unless its
// container's ack came: then for settleWindow after the ack (the invoker's
// own advertisement counts the memory by then), and not at all once its
// attempt failed.
func TestReservationSettlesOnAck(t *testing.T) {
	c := &creator{reserved: map[string][]reservation{}}
	t0 := time.Unix(1_700_000_000, 0)
	c.reserved["inv"] = []reservation{{id: "a", mb: 128, at: t0}, {id: "b", mb: 256, at: t0}, {id: "c", mb: 512, at: t0}}
	if got := c.reservedLocked("inv", t0.Add(time.Second)); got != 896 {
		t.Fatalf("reserved %d MB, want 896", got)
	}
	c.settle("inv", "a", t0.Add(time.Second))
	c.unreserve("inv", "c")
	if got := c.reservedLocked("inv", t0.Add(time.Second+settleWindow/2)); got != 384 {
		t.Fatalf("reserved %d MB just after a's ack, want 384 (a and b)", got)
	}
	if got := c.reservedLocked("inv", t0.Add(time.Second+settleWindow)); got != 256 {
		t.Fatalf("reserved %d MB after a settled, want 256 (b only: no ack yet)", got)
	}
	if got := c.reservedLocked("inv", t0.Add(reserveWindow)); got != 0 {
		t.Fatalf("reserved %d MB after reserveWindow, want 0", got)
	}
	// An ack late in the window does not lengthen it.
	c.reserved["inv"] = []reservation{{id: "d", mb: 128, at: t0}}
	c.settle("inv", "d", t0.Add(reserveWindow-time.Millisecond))
	if got := c.reservedLocked("inv", t0.Add(reserveWindow)); got != 0 {
		t.Fatalf("reserved %d MB: a late ack lengthened the reservation", got)
	}
}
