package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

func TestParseContainerKey(t *testing.T) {
	for _, c := range []whisk.ContainerInfo{
		{Namespace: "ns", Action: "a", Rev: 3, InvokerID: "invoker0", ContainerID: "c1"},
		{Namespace: "a/b", Action: "x y", Rev: 12, InvokerID: "i/0", ContainerID: "c%2F1"},
	} {
		got, ok := parseContainerKey(containerKey(c))
		if !ok || got != c {
			t.Errorf("parseContainerKey(containerKey(%+v)) = %+v, %v", c, got, ok)
		}
	}
	for _, key := range []string{"eddy/container/ns/a/3/i", "eddy/container/ns/a/x/i/c", "eddy/creating/ns/a/3/s/c", "eddy/container/ns/a/3/i/c/d"} {
		if got, ok := parseContainerKey(key); ok {
			t.Errorf("parseContainerKey(%q) = %+v, want not ok", key, got)
		}
	}
}

// A container key deleted by its owner, or with its invoker's lease
// (revoked here: the invoker's process died and its lease expired), is
// reported; puts are not.
func TestWatchContainerDeletes(t *testing.T) {
	e := startEtcd(t)
	c := dial(t, e.Endpoints())
	got := make(chan whisk.ContainerInfo, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.WatchContainerDeletes(ctx, func(i whisk.ContainerInfo) { got <- i }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchContainerDeletes returned %v after ctx ended, want nil", err)
		}
	})
	inv, _ := newSession(t, c, 3*time.Second)
	c1 := whisk.ContainerInfo{Namespace: "ns", Action: "a", Rev: 1, InvokerID: "invoker0", ContainerID: "c1", Addr: "x"}
	c2 := c1
	c2.ContainerID = "c2"
	time.Sleep(200 * time.Millisecond) // the watch is open (it reports deletions from its start)
	for _, ci := range []whisk.ContainerInfo{c1, c2} {
		if err := inv.RegisterContainer(ctxT(t), ci); err != nil {
			t.Fatal(err)
		}
	}
	want := func(w whisk.ContainerInfo) {
		t.Helper()
		w.Addr = "" // only what the key names
		select {
		case i := <-got:
			if i != w {
				t.Fatalf("deleted %+v, want %+v", i, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no deletion of %+v reported", w)
		}
	}
	if err := inv.DeregisterContainer(ctxT(t), c1); err != nil {
		t.Fatal(err)
	}
	want(c1)
	if err := inv.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	want(c2)
	select {
	case i := <-got:
		t.Fatalf("unexpected report %+v", i)
	case <-time.After(300 * time.Millisecond):
	}
}
