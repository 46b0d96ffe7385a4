package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

type fakeStatus struct {
	st  whisk.ClusterStatus
	err error
}

func (f *fakeStatus) Status(context.Context) (whisk.ClusterStatus, error) { return f.st, f.err }

func TestStatusRoute(t *testing.T) {
	r := newRig(t)
	// Without Deps.Status the route does not exist.
	wantError(t, r.do(t, "GET", "/eddy/v1/status", "", asGuest), 404, whisk.MsgNotFound)

	fs := &fakeStatus{st: whisk.ClusterStatus{
		Revision:   7,
		Schedulers: []whisk.SchedulerInfo{{ID: "s1", Addr: "127.0.0.1:1", Queues: 1}},
		Invokers:   []whisk.InvokerInfo{{ID: "i1", Status: whisk.InvokerUp, UserMemory: 2048, FreeMemory: 1792}},
		Queues:     []whisk.QueueStatus{{Namespace: "guest", Action: "hello", Leader: "s1", Followers: []string{"s2"}, Containers: 1}},
	}}
	r.srv.Close()
	r.srv = httptest.NewServer(newHandler(t, Config{Limits: r.limits}, Deps{
		Store: r.store, Invoker: r.inv, Runtimes: manifest.Default(), Topics: r.bus, Status: fs,
	}))
	t.Cleanup(r.srv.Close)

	wantError(t, r.do(t, "GET", "/eddy/v1/status", "", noAuth), 401, whisk.MsgAuthMissing)
	if res := r.do(t, "POST", "/eddy/v1/status", "", asGuest); res.status != 405 {
		t.Fatalf("POST: %d", res.status)
	}
	res := r.do(t, "GET", "/eddy/v1/status", "", asGuest)
	if res.status != 200 {
		t.Fatalf("GET: %d %s", res.status, res.body)
	}
	var got whisk.ClusterStatus
	if err := json.Unmarshal(res.body, &got); err != nil || got.Revision != 7 || len(got.Queues) != 1 || got.Queues[0].Followers[0] != "s2" {
		t.Fatalf("GET: %s (%v)", res.body, err)
	}
	// Another tenant sees the schedulers and invokers, not guest's queues.
	res = r.do(t, "GET", "/eddy/v1/status", "", "other")
	got = whisk.ClusterStatus{}
	if err := json.Unmarshal(res.body, &got); res.status != 200 || err != nil || len(got.Queues) != 0 ||
		len(got.Schedulers) != 1 || len(got.Invokers) != 1 {
		t.Fatalf("GET as other: %d %s (%v)", res.status, res.body, err)
	}

	fs.err = errors.New("etcd down")
	if res := r.do(t, "GET", "/eddy/v1/status", "", asGuest); res.status != 503 {
		t.Fatalf("GET with etcd down: %d %s", res.status, res.body)
	}
}
