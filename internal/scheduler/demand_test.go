package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The queues of a namespace share one demand read per demandFresh; a
// published demand and a failed read are never answered from the cache.
func TestDemandCacheSharesReads(t *testing.T) {
	var c demandCache
	reads, wanted := 0, false
	var fail error
	read := func(context.Context, string) (bool, error) {
		reads++
		return wanted, fail
	}
	ctx, t0 := context.Background(), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	has := func(at time.Time, ns string) bool {
		t.Helper()
		w, err := c.has(ctx, at, ns, read)
		if err != nil && fail == nil {
			t.Fatal(err)
		}
		return w
	}
	for i := range 100 { // 100 queues of ns ask within demandFresh
		has(t0.Add(time.Duration(i)*demandFresh/200), "ns")
	}
	if reads != 1 {
		t.Fatalf("%d reads for 100 queues of one namespace, want 1", reads)
	}
	has(t0, "other")
	if reads != 2 {
		t.Fatalf("another namespace was answered from ns's read")
	}
	wanted = true
	if has(t0.Add(demandFresh), "ns") != true || reads != 3 {
		t.Fatalf("a read older than demandFresh was used (%d reads)", reads)
	}
	wanted = false
	has(t0.Add(demandFresh+time.Millisecond), "ns")
	c.forget("ns") // a local queue published a demand
	wanted = true
	if !has(t0.Add(demandFresh+2*time.Millisecond), "ns") {
		t.Fatal("a forgotten namespace was answered from the cache")
	}
	fail = errors.New("etcd down")
	if _, err := c.has(ctx, t0.Add(3*demandFresh), "ns", read); err == nil {
		t.Fatal("a failed read was not reported")
	}
	fail = nil
	before := reads
	has(t0.Add(3*demandFresh), "ns")
	if reads != before+1 {
		t.Fatal("a failed read was kept")
	}
}
