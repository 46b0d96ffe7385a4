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
	cr := newCreator(&Scheduler{d: Deps{Client: cli, Session: sess, Now: time.Now}, log: log})

	a := whisk.ActionMeta{Namespace: "ns", Name: "a", Rev: 1, Limits: whisk.Limits{Instances: 2}}
	b := whisk.ActionMeta{Namespace: "ns", Name: "b", Rev: 1}
	// a has one container and one creation: its instances limit (2) is
	// reached; the namespace (limit 4) has room for b.
	if err := sess.RegisterContainer(ctx, whisk.ContainerInfo{Namespace: "ns", Action: "a", Rev: 1, InvokerID: "i", ContainerID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.PutCreation(ctx, whisk.CreationInfo{Namespace: "ns", Action: "a", Rev: 1, SchedulerID: "s", CreationID: "x"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := cr.admit(ctx, a, 4, nil); !errors.Is(err, errRefused) {
		t.Fatalf("admit a at its instances limit: %v, want refused", err)
	}
	unlock, held, swap, _, err := cr.admit(ctx, b, 4, nil)
	if err != nil || held != 2 || swap {
		t.Fatalf("admit b with room: held %d, swap %v, %v; want 2, no swap", held, swap, err)
	}
	unlock()
	if _, _, _, _, err := cr.admit(ctx, b, 2, nil); !errors.Is(err, errRefused) {
		t.Fatalf("admit b with the namespace full: %v, want refused", err)
	}
	// The namespace full, with an idle container of it on an invoker: a
	// swap; not once this scheduler sent a swap there (reserveWindow).
	idle := []whisk.InvokerInfo{{ID: "i", Status: whisk.InvokerUp, UserMemory: 2048, FreeMemory: 0, IdleMemory: 256, Idle: map[string]int{"ns": 1}}}
	unlock, _, swap, _, err = cr.admit(ctx, b, 2, idle)
	if err != nil || !swap {
		t.Fatalf("admit b with the namespace full and an idle container: swap %v, %v; want a swap", swap, err)
	}
	iid, _, err := cr.pick("sw1", 256, map[string]bool{}, idle, 2, "ns")
	unlock()
	if err != nil || iid != "i" {
		t.Fatalf("pick for a swap: %q, %v", iid, err)
	}
	if _, _, _, _, err := cr.admit(ctx, b, 2, idle); !errors.Is(err, errRefused) {
		t.Fatalf("a second swap of the one idle container: %v, want refused", err)
	}
	cr.unreserve("i", "sw1")

	// 10 concurrent admissions of b by two schedulers (two creators, two
	// sessions: their local locks do not exclude each other), each writing
	// its creation key as admitted on its count: exactly the 2 free slots
	// of the namespace (limit 4) go, and the losers' recounts refuse them.
	sess2, err := cluster.NewSession(ctx, cli, 5*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sess2.Close(context.Background())
	cr2 := newCreator(&Scheduler{d: Deps{Client: cli, Session: sess2, Now: time.Now}, log: log})
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted, conflicts := 0, 0
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, ss, sid := cr, sess, "s1"
			if i%2 == 1 {
				c, ss, sid = cr2, sess2, "s2"
			}
			for {
				unlock, _, _, at, err := c.admit(ctx, b, 4, nil)
				if err != nil {
					return
				}
				ok, err := ss.PutCreation(ctx, whisk.CreationInfo{Namespace: "ns", Action: "b", Rev: 1, SchedulerID: sid,
					CreationID: string(rune('a' + i))}, at)
				unlock()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if ok {
					admitted++
				} else {
					conflicts++
				}
				mu.Unlock()
				if ok {
					return
				}
			}
		}()
	}
	wg.Wait()
	if admitted != 2 {
		t.Fatalf("%d of 10 concurrent creations (two schedulers) admitted into 2 free slots (%d recounts)", admitted, conflicts)
	}
	n, _, err := cli.CountNamespace(ctx, "ns")
	if _, cr, _ := cli.CountNamespace(ctx, "ns"); err != nil || n+cr != 4 {
		t.Fatalf("namespace uses %d+%d (%v), want 4", n, cr, err)
	}
	t.Logf("2 admitted, %d admissions refused on a stale count and counted again", conflicts)
}
