package cluster

import (
	"context"
	"testing"
	"time"
)

func TestAlarmShardClaimReleaseAndExpiry(t *testing.T) {
	e := startEtcd(t)
	c := dial(t, e.Endpoints())
	ctx := context.Background()
	// A TTL that a late keep-alive on a loaded machine does not lose (a
	// 2 s one did: a's claim vanished before the owners were read); the
	// expiry below waits for it with room to spare.
	a, stopA := newSession(t, c, 6*time.Second)
	b, _ := newSession(t, c, 6*time.Second)

	if ok, err := a.ClaimAlarmShard(ctx, 3, "a"); err != nil || !ok {
		t.Fatalf("a claims a free shard: %v %v", ok, err)
	}
	if ok, err := a.ClaimAlarmShard(ctx, 3, "a"); err != nil || !ok {
		t.Fatalf("a claims its own shard again: %v %v", ok, err)
	}
	if ok, err := b.ClaimAlarmShard(ctx, 3, "b"); err != nil || ok {
		t.Fatalf("b claims a's shard: %v %v", ok, err)
	}
	if ok, err := b.ClaimAlarmShard(ctx, 4, "b"); err != nil || !ok {
		t.Fatalf("b claims a free shard: %v %v", ok, err)
	}
	owners, err := c.AlarmShardOwners(ctx)
	if err != nil || len(owners) != 2 || owners[3] != "a" || owners[4] != "b" {
		t.Fatalf("owners %v %v", owners, err)
	}
	// b cannot release a's shard; b releases its own.
	if err := b.ReleaseAlarmShard(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := b.ReleaseAlarmShard(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if owners, _ := c.AlarmShardOwners(ctx); len(owners) != 1 || owners[3] != "a" {
		t.Fatalf("after releases: %v", owners)
	}
	// a stops keeping its lease alive (a killed process): its shard frees
	// up when the lease expires and b takes it.
	stopA()
	eventually(t, 30*time.Second, "a's shard freed after its lease stopped being renewed", func() bool {
		ok, err := b.ClaimAlarmShard(ctx, 3, "b")
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
	if owners, _ := c.AlarmShardOwners(ctx); owners[3] != "b" {
		t.Fatalf("after expiry: %v", owners)
	}
}
