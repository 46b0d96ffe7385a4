package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/cluster/clustertest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// admit refuses a creation when fresh etcd counts leave no room under the
// namespace limit or the action's instances limit, and serialises a
// namespace's admissions so that concurrent creations, each writing its
// key under the lock, never over-commit it.
func TestAdmitHoldsLimits(t *testing.T) {
	t.Parallel()
	c := clustertest.StartTestCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	cli, err := cluster.Dial(ctx, c.Endpoints(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	sess, err := cluster.NewSession(ctx, cli, 5*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(context.Background())
	cr := newCreator(&Scheduler{d: Deps{Client: cli, Session: sess}, log: log})

	a := whisk.ActionMeta{Namespace: "ns", Name: "a", Rev: 1, Limits: whisk.Limits{Instances: 2}}
	b := whisk.ActionMeta{Namespace: "ns", Name: "b", Rev: 1}
	// a has one container and one creation: its instances limit (2) is
	// reached; the namespace (limit 4) has room for b.
	if err := sess.RegisterContainer(ctx, whisk.ContainerInfo{Namespace: "ns", Action: "a", Rev: 1, InvokerID: "i", ContainerID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if err := sess.PutCreation(ctx, whisk.CreationInfo{Namespace: "ns", Action: "a", Rev: 1, SchedulerID: "s", CreationID: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cr.admit(ctx, a, 4); !errors.Is(err, errRefused) {
		t.Fatalf("admit a at its instances limit: %v, want refused", err)
	}
	unlock, err := cr.admit(ctx, b, 4)
	if err != nil {
		t.Fatalf("admit b with room: %v", err)
	}
	unlock()
	if _, err := cr.admit(ctx, b, 2); !errors.Is(err, errRefused) {
		t.Fatalf("admit b with the namespace full: %v, want refused", err)
	}

	// 10 concurrent admissions of b, each writing its creation key while
	// admitted: exactly the 2 free slots of the namespace (limit 4) go.
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := cr.admit(ctx, b, 4)
			if err != nil {
				return
			}
			defer unlock()
			if err := sess.PutCreation(ctx, whisk.CreationInfo{Namespace: "ns", Action: "b", Rev: 1, SchedulerID: "s",
				CreationID: string(rune('a' + i))}); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			admitted++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if admitted != 2 {
		t.Fatalf("%d of 10 concurrent creations admitted into 2 free slots", admitted)
	}
	n, _, err := cli.CountNamespace(ctx, "ns")
	if _, cr, _ := cli.CountNamespace(ctx, "ns"); err != nil || n+cr != 4 {
		t.Fatalf("namespace uses %d+%d (%v), want 4", n, cr, err)
	}
}
