package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// LeadersOf lists exactly the actions whose leader key names the
// scheduler: not follower keys, not other schedulers' keys, and names that
// need escaping come back whole.
func TestLeadersOf(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	c := dial(t, e.Endpoints())
	s1, _ := newSession(t, c, 5*time.Second)
	s2, _ := newSession(t, c, 5*time.Second)
	ctx := ctxT(t)
	me := whisk.LeaderInfo{SchedulerID: "s1", Addr: "127.0.0.1:1"}
	other := whisk.LeaderInfo{SchedulerID: "s2", Addr: "127.0.0.1:2"}
	mine := []whisk.FQN{{Namespace: "guest", Name: "a"}, {Namespace: "ns/x", Name: "pkg/b"}}
	for _, f := range mine {
		if won, _, err := s1.ElectLeader(ctx, f, me); err != nil || !won {
			t.Fatalf("elect %s: %v %v", f, won, err)
		}
	}
	theirs := whisk.FQN{Namespace: "guest", Name: "c"}
	if won, _, err := s2.ElectLeader(ctx, theirs, other); err != nil || !won {
		t.Fatalf("elect %s: %v %v", theirs, won, err)
	}
	// s1 follows s2's queue: a follower key naming s1 is not a leader key.
	if err := s1.RegisterFollower(ctx, theirs, me); err != nil {
		t.Fatal(err)
	}
	got, err := c.LeadersOf(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b whisk.FQN) int {
		if a.Namespace != b.Namespace {
			return strings.Compare(a.Namespace, b.Namespace)
		}
		return strings.Compare(a.Name, b.Name)
	})
	if !slices.Equal(got, mine) {
		t.Fatalf("LeadersOf(s1) = %v, want %v", got, mine)
	}
	if got, err := c.LeadersOf(ctx, "s3"); err != nil || len(got) != 0 {
		t.Fatalf("LeadersOf(s3) = %v %v, want none", got, err)
	}
}
