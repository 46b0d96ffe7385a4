package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// waitTimeOf is a record's waitTime annotation in ms (-1 when absent).
func waitTimeOf(a whisk.Activation) int64 { return annInt(a, "waitTime") }

// annInt is a record's integer annotation (-1 when absent).
func annInt(a whisk.Activation, key string) int64 {
	v, ok := a.Annotations.Get(key)
	if !ok {
		return -1
	}
	var ms int64
	if json.Unmarshal(v, &ms) != nil {
		return -1
	}
	return ms
}

// TestTwoTenantFlood is issue 17's scenario on a real standalone (invoker
// memory 2048 MB = 8 containers of 256 MB, no stem cells): tenant A (guest)
// posts 60 calls of a 2 s action at once; once A holds the invoker, tenant
// B's first call gets a container after one reclaim and one cold start
// (the cold start on the idle platform is measured in this run and
// logged); before issue 17 it waited for A's flood to drain (16–17 s).
// Every one of A's calls completes successfully (none lost).
func TestTwoTenantFlood(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		e := startEddy(t, backend, "", "--invoker-memory", "2048", "--prewarm", "0")
		keyB := e.admin("user", "create", "tenantb")
		code := map[string]any{"exec": map[string]any{"kind": "python:3.11", "code": sleepPy}, "limits": map[string]any{"memory": 256}}
		e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/probe", code)
		e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/flood", code)
		waitTook(t, cacheBound, "tenant B's key accepted", func() bool {
			c, _, _ := e.callAuth(keyB, "PUT", "/api/v1/namespaces/_/actions/meek", code)
			return c == 200
		})

		// A cold start on the idle platform: the unit of B's wait.
		_, probe := e.invokeBlocking("probe", map[string]any{"ms": 1})
		coldMs := waitTimeOf(probe) + annInt(probe, "initTime")
		if waitTimeOf(probe) < 0 || coldMs <= 0 {
			t.Fatalf("probe record without waitTime/initTime: %+v", probe)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		etcd := e.etcdClient(ctx)

		floodStart := time.Now()
		ids := e.invokeAsync(t, "flood", map[string]any{"ms": 2000}, 60, 60)
		// A holds all it can: its containers run, and only the headroom
		// for other namespaces is left free.
		busy := func() bool {
			n, err := etcd.CountContainers(ctx, whisk.FQN{Namespace: whisk.GuestNamespace, Name: "flood"}, 1)
			return err == nil && n >= 7
		}
		waitTook(t, time.Minute, "the flood holds the invoker", busy)

		status, rec, body := e.invokeAs(keyB, "_/actions/meek", map[string]any{"ms": 1})
		if status != 200 || !rec.Response.Success {
			t.Fatalf("tenant B's call: %d %+v %v", status, rec, body)
		}
		bWait := waitTimeOf(rec)
		recs := e.records(t, ids, 3*time.Minute)
		drained := time.Since(floodStart)
		failed := 0
		for _, a := range recs {
			if !a.Response.Success {
				failed++
			}
		}
		t.Logf("%s: cold start %d ms (wait %d + init %d); B's waitTime %d ms during A's flood; A's 60 calls drained in %v",
			backend, coldMs, waitTimeOf(probe), annInt(probe, "initTime"), bWait, drained.Round(time.Millisecond))
		if failed > 0 {
			t.Errorf("%d of A's 60 calls failed", failed)
		}
		// B waits for one reclaim (an idle container of A's removed) and
		// one cold start, not for A's flood: before issue 17 it waited
		// 16–17 s of a ~19 s flood. On a quiet machine B waits 1.2–1.6
		// cold starts (docs/internals.md, "Capacity"); under CI's load it
		// waited up to 4 s of a 22 s flood, so the bound is a quarter.
		if bWait < 0 || time.Duration(bWait)*time.Millisecond > drained/4 {
			t.Errorf("B's waitTime %d ms during A's %v flood; want at most a quarter of it", bWait, drained.Round(time.Millisecond))
		}
		if n := strings.Count(e.out.String(), "no invoker has enough free memory"); n > 20 {
			t.Errorf("%d lines of 'no invoker has enough free memory' during the flood", n)
		}
	})
}
