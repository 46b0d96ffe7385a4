package storetest

import (
	"errors"
	"testing"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// testActivationEach: EachActivation yields what ListActivations returns,
// in order; fn's error stops it; Summary reads records without logs and
// result and with everything else.
func testActivationEach(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	for i := 1; i <= 5; i++ {
		if err := s.PutActivation(ctx, newActivation("ns", "each", i, 1700000000000+int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	f := store.ActivationFilter{Skip: 1, Limit: 3}
	list, err := s.ListActivations(ctx, "ns", f)
	if err != nil {
		t.Fatal(err)
	}
	var each []whisk.Activation
	if err := s.EachActivation(ctx, "ns", f, func(a whisk.Activation) error {
		each = append(each, a)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || !sameJSON(t, each, list) {
		t.Fatalf("EachActivation = %v, ListActivations = %v", activationIDs(each), activationIDs(list))
	}
	stop := errors.New("stop")
	n := 0
	err = s.EachActivation(ctx, "ns", store.ActivationFilter{}, func(whisk.Activation) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Fatalf("EachActivation after fn failed: err %v after %d records, want fn's error after 2", err, n)
	}
	sums, err := s.ListActivations(ctx, "ns", store.ActivationFilter{Summary: true, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 2 {
		t.Fatalf("summaries: %d records, want 2", len(sums))
	}
	for i, got := range sums {
		want := newActivation("ns", "each", 5-i, 1700000000000+int64(5-i))
		if len(got.Logs) != 0 || len(got.Response.Result) != 0 {
			t.Errorf("summary %s has logs %q and result %s, want neither", got.ActivationID, got.Logs, got.Response.Result)
		}
		want.Logs, want.Response.Result = nil, nil
		got.Logs, got.Response.Result = nil, nil
		if !sameJSON(t, got, want) {
			t.Errorf("summary = %+v, want %+v", got, want)
		}
	}
}
