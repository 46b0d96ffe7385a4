package clustertest_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/cluster/clustertest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

func TestThreeMembersSurviveOneStopped(t *testing.T) {
	c := clustertest.StartTestCluster(t, 3)
	if got := len(c.Endpoints()); got != 3 {
		t.Fatalf("%d endpoints, want 3", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)

	cli, err := cluster.Dial(ctx, c.Endpoints(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	s, err := cluster.NewSession(ctx, cli, 2*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go s.Run(runCtx)

	f := whisk.FQN{Namespace: "guest", Name: "hello"}
	register := func(cid string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := s.RegisterContainer(wctx, whisk.ContainerInfo{Namespace: f.Namespace, Action: f.Name, Rev: 1, InvokerID: "i0", ContainerID: cid})
		if err != nil {
			t.Fatalf("register %s: %v", cid, err)
		}
	}
	register("c1")
	if won, _, err := s.ElectLeader(ctx, f, whisk.LeaderInfo{SchedulerID: "s0"}); err != nil || !won {
		t.Fatalf("ElectLeader: %v, %v", won, err)
	}

	// Stop one member: two of three keep quorum; writes and reads go on.
	stopped := c.Members()[0]
	stopped.Stop()
	register("c2")
	if n, err := cli.CountContainers(ctx, f, 1); err != nil || n != 2 {
		t.Fatalf("CountContainers with a member down = %d, %v; want 2", n, err)
	}
	time.Sleep(3 * time.Second) // more than the TTL: the lease is kept alive
	if li, ok, err := cli.Leader(ctx, f); err != nil || !ok || li.SchedulerID != "s0" {
		t.Fatalf("Leader with a member down = %+v, %v, %v", li, ok, err)
	}

	// The member comes back and catches up.
	stopped.Restart()
	only, err := cluster.Dial(ctx, []string{stopped.ClientURL}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer only.Close()
	if n, err := only.CountContainers(ctx, f, 1); err != nil || n != 2 {
		t.Fatalf("restarted member counts %d, %v; want 2", n, err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := only.CountContainers(ctx, f, 1); err != nil || n != 0 {
		t.Fatalf("after Close the restarted member counts %d, %v; want 0", n, err)
	}
}
