package scheduler_test

import (
	"testing"

	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// TestIdleStemCellsCountAsRoom: an invoker whose memory is held by idle
// prewarm stem cells still gets creations (its stem cells give way), and
// is preferred to one with less room.
func TestIdleStemCellsCountAsRoom(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s1 := e.scheduler("s1", scheduler.Config{})
	inv := e.session()
	for _, info := range []whisk.InvokerInfo{
		{ID: "i0", Status: whisk.InvokerUp, UserMemory: 512, FreeMemory: 0, StemCellMemory: 512},
		{ID: "i1", Status: whisk.InvokerUp, UserMemory: 512, FreeMemory: 128},
	} {
		if err := inv.RegisterInvoker(e.ctx, info); err != nil {
			t.Fatal(err)
		}
	}
	c0 := e.subscribe(whisk.InvokerTopic("i0"), "invoker")
	if _, err := s1.rpc.CreateQueue(e.ctx, &rpc.CreateQueueRequest{Action: hello}); err != nil {
		t.Fatal(err)
	}
	e.publish("1", "c0")
	if cr := next[whisk.ContainerCreation](t, c0); cr.Action.FQN() != hello.FQN() {
		t.Fatalf("creation %+v", cr)
	}
}
