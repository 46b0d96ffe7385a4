package cluster

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

func TestStatus(t *testing.T) {
	e := startEtcd(t)
	c := dial(t, e.Endpoints())
	s, _ := newSession(t, c, 5*time.Second)
	ctx := ctxT(t)

	hello := whisk.FQN{Namespace: "guest", Name: "hello"}
	orphan := whisk.FQN{Namespace: "a/b", Name: "x y"} // containers but no leader
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.RegisterScheduler(ctx, whisk.SchedulerInfo{ID: "s0", Addr: "127.0.0.1:1", Queues: 1}))
	// One of hello's containers is idle; a count that lags (3 idle of a
	// queue with 1 container) is capped at the containers.
	must(s.RegisterInvoker(ctx, whisk.InvokerInfo{ID: "i0", Status: whisk.InvokerUp, UserMemory: 2048, FreeMemory: 1792,
		IdleActions: map[string]int{"guest/hello": 1, orphan.String(): 3}}))
	if won, _, err := s.ElectLeader(ctx, hello, whisk.LeaderInfo{SchedulerID: "s0", Addr: "127.0.0.1:1"}); err != nil || !won {
		t.Fatalf("ElectLeader = %v, %v", won, err)
	}
	follower, _ := json.Marshal(whisk.LeaderInfo{SchedulerID: "s/1", Addr: "127.0.0.1:2"})
	if _, err := c.etcd.Put(ctx, followerKey(hello, "s/1"), string(follower)); err != nil {
		t.Fatal(err)
	}
	for i, f := range []whisk.FQN{hello, hello, orphan} {
		must(s.RegisterContainer(ctx, whisk.ContainerInfo{Namespace: f.Namespace, Action: f.Name, Rev: int64(i + 1), InvokerID: "i0", ContainerID: string(rune('a' + i))}))
	}
	must(putCreation(ctx, s, whisk.CreationInfo{Namespace: "guest", Action: "hello", Rev: 2, SchedulerID: "s0", CreationID: "c1", InvokerID: "i0"}))

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision == 0 || len(st.Schedulers) != 1 || st.Schedulers[0].ID != "s0" || len(st.Invokers) != 1 || st.Invokers[0].FreeMemory != 1792 {
		t.Fatalf("status = %+v", st)
	}
	want := []whisk.QueueStatus{
		{Namespace: "a/b", Action: "x y", Containers: 1, Idle: 1},
		{Namespace: "guest", Action: "hello", Leader: "s0", LeaderAddr: "127.0.0.1:1", Followers: []string{"s/1"}, Containers: 2, Idle: 1, Creations: 1},
	}
	if !reflect.DeepEqual(st.Queues, want) {
		t.Fatalf("queues = %+v\nwant %+v", st.Queues, want)
	}
}
