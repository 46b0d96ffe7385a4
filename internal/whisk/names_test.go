package whisk

import (
	"strconv"
	"testing"
	"time"
)

// TestActivationIDTimeOrdered: an id is 32 lowercase hex characters whose
// first 12 are the minting time in ms, so that later ids sort after
// earlier ones; the other 20 are random, so ids of the same millisecond
// differ.
func TestActivationIDTimeOrdered(t *testing.T) {
	t0 := time.UnixMilli(1_790_000_000_123)
	id := newActivationID(t0)
	if _, err := ParseActivationID(string(id)); err != nil {
		t.Fatalf("id %q does not parse: %v", id, err)
	}
	ms, err := strconv.ParseInt(string(id[:12]), 16, 64)
	if err != nil || ms != t0.UnixMilli() {
		t.Fatalf("id %q: prefix %d (%v), want the time %d", id, ms, err, t0.UnixMilli())
	}
	later := newActivationID(t0.Add(time.Millisecond))
	if !(later > id) {
		t.Fatalf("id of a later ms %q does not sort after %q", later, id)
	}
	seen := map[ActivationID]bool{}
	randomBits := map[byte]bool{}
	for range 10_000 {
		id := newActivationID(t0)
		if seen[id] {
			t.Fatalf("id %q minted twice", id)
		}
		seen[id] = true
		if id[:12] != newActivationID(t0)[:12] {
			t.Fatalf("same ms, different prefix: %q", id)
		}
		randomBits[id[12]] = true
		randomBits[id[31]] = true
	}
	if len(randomBits) != 16 {
		t.Fatalf("the random part uses %d of 16 hex digits", len(randomBits))
	}
	if now := NewActivationID(); now[:12] < id[:12] {
		t.Fatalf("NewActivationID %q is not of now", now)
	}
}
