package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

type leaderState struct {
	li               whisk.LeaderInfo
	present, retired bool
}

// watchLeader runs c.WatchLeader(f) until the test ends and returns what
// it reports.
func watchLeader(t *testing.T, c *Client, f whisk.FQN) <-chan leaderState {
	t.Helper()
	states := make(chan leaderState, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.WatchLeader(ctx, f, func(li whisk.LeaderInfo, present, retired bool) {
			states <- leaderState{li, present, retired}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchLeader: %v", err)
		}
	})
	return states
}

func nextState(t *testing.T, states <-chan leaderState) leaderState {
	t.Helper()
	select {
	case s := <-states:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no leader state reported within 10 s")
		return leaderState{}
	}
}

func followerIDs(t *testing.T, c *Client, f whisk.FQN) []string {
	t.Helper()
	fs, err := c.Followers(ctxT(t), f)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(fs))
	for i, li := range fs {
		ids[i] = li.SchedulerID
	}
	return ids
}

// The follower life cycle in etcd: a follower key lives under its
// follower's lease; a leader key that vanishes with its lease is a
// failover (not retired); RetireQueue removes the leader key and the
// follower keys in one revision (retired).
func TestFollowerKeysAndWatchLeader(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	c := dial(t, e.Endpoints())
	ctx := ctxT(t)
	f := whisk.FQN{Namespace: "guest", Name: "pkg/hello"}
	other := whisk.FQN{Namespace: "guest", Name: "pkg"}
	la := whisk.LeaderInfo{SchedulerID: "sa", Addr: "127.0.0.1:1"}
	lb := whisk.LeaderInfo{SchedulerID: "sb", Addr: "127.0.0.1:2"}
	a, _ := newSession(t, dial(t, e.Endpoints()), 5*time.Second)
	b, _ := newSession(t, dial(t, e.Endpoints()), 5*time.Second)

	states := watchLeader(t, c, f)
	if s := nextState(t, states); s.present || s.retired {
		t.Fatalf("first state %+v, want absent (not retired)", s)
	}
	if won, _, err := a.ElectLeader(ctx, f, la); err != nil || !won {
		t.Fatalf("a.ElectLeader: %v %v", won, err)
	}
	if s := nextState(t, states); !s.present || s.li != la {
		t.Fatalf("state %+v, want a leading", s)
	}
	if err := b.RegisterFollower(ctx, f, lb); err != nil {
		t.Fatal(err)
	}
	// Another action's keys (a prefix of f's name) are not f's.
	if err := b.RegisterFollower(ctx, other, lb); err != nil {
		t.Fatal(err)
	}
	if ids := followerIDs(t, c, f); len(ids) != 1 || ids[0] != "sb" {
		t.Fatalf("followers %v, want [sb]", ids)
	}

	// The leader retires the queue: leader and follower keys go together.
	if err := b.RetireQueue(ctx, f); err != nil { // not b's to retire
		t.Fatal(err)
	}
	if ids := followerIDs(t, c, f); len(ids) != 1 {
		t.Fatalf("followers %v after someone else's RetireQueue", ids)
	}
	if err := a.RetireQueue(ctx, f); err != nil {
		t.Fatal(err)
	}
	if s := nextState(t, states); s.present || !s.retired || s.li != la {
		t.Fatalf("state %+v, want a gone, retired", s)
	}
	if ids := followerIDs(t, c, f); len(ids) != 0 {
		t.Fatalf("followers %v after RetireQueue", ids)
	}
	if ids := followerIDs(t, c, other); len(ids) != 1 {
		t.Fatalf("followers of the other action %v, want [sb]", ids)
	}
	// The follower forgets its key (else a re-grant would re-put it).
	if err := b.DeregisterFollower(ctx, f, "sb"); err != nil {
		t.Fatal(err)
	}

	// A leader whose lease ends: a failover, not a retirement.
	if won, _, err := a.ElectLeader(ctx, f, la); err != nil || !won {
		t.Fatalf("a.ElectLeader again: %v %v", won, err)
	}
	if s := nextState(t, states); !s.present || s.li != la {
		t.Fatalf("state %+v, want a leading", s)
	}
	if err := b.RegisterFollower(ctx, f, lb); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := nextState(t, states); s.present || s.retired || s.li != la {
		t.Fatalf("state %+v, want a gone, not retired", s)
	}
	if won, _, err := b.ElectLeader(ctx, f, lb); err != nil || !won {
		t.Fatalf("b.ElectLeader after a died: %v %v", won, err)
	}
	if s := nextState(t, states); !s.present || s.li != lb {
		t.Fatalf("state %+v, want b leading", s)
	}
	if err := b.DeregisterFollower(ctx, f, "sb"); err != nil {
		t.Fatal(err)
	}
	if ids := followerIDs(t, c, f); len(ids) != 0 {
		t.Fatalf("followers %v after b deregistered", ids)
	}
}

// A follower key vanishes with its scheduler's lease, without a revoke,
// once the TTL has passed.
func TestFollowerKeyExpiresWithLease(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	c := dial(t, e.Endpoints())
	ctx := ctxT(t)
	f := whisk.FQN{Namespace: "guest", Name: "hello"}
	s, stop := newSession(t, dial(t, e.Endpoints()), 2*time.Second)
	if err := s.RegisterFollower(ctx, f, whisk.LeaderInfo{SchedulerID: "s1", Addr: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	if ids := followerIDs(t, c, f); len(ids) != 1 || ids[0] != "s1" {
		t.Fatalf("followers %v, want [s1]", ids)
	}
	stop() // keep-alives stop; nothing is revoked
	start := time.Now()
	eventually(t, 15*time.Second, "the follower key to expire with its lease", func() bool {
		return len(followerIDs(t, c, f)) == 0
	})
	t.Logf("follower key gone %v after the last keep-alive loop ended (TTL %v)", time.Since(start).Round(time.Millisecond), s.ttl)
}
