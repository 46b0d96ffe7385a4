package whisk

import "testing"

// A key sees its own namespace's queues and idle containers only.
func TestClusterStatusForNamespace(t *testing.T) {
	all := ClusterStatus{
		Queues: []QueueStatus{{Namespace: "a"}, {Namespace: "b"}},
		Invokers: []InvokerInfo{
			{ID: "i1", Idle: map[string]int{"a": 2, "b": 3}, IdleActions: map[string]int{"a/x": 1, "a/p/y": 1, "b/x": 3, "ab/x": 1}},
			{ID: "i2", Idle: map[string]int{"b": 1}, IdleActions: map[string]int{"b/z": 1}},
		},
	}
	got := all.ForNamespace("a")
	if len(got.Queues) != 1 || got.Queues[0].Namespace != "a" {
		t.Errorf("queues %+v", got.Queues)
	}
	if len(got.Invokers) != 2 || len(got.Invokers[0].Idle) != 1 || got.Invokers[0].Idle["a"] != 2 || got.Invokers[1].Idle != nil {
		t.Errorf("invokers %+v", got.Invokers)
	}
	if a := got.Invokers[0].IdleActions; len(a) != 2 || a["a/x"] != 1 || a["a/p/y"] != 1 || got.Invokers[1].IdleActions != nil {
		t.Errorf("idle containers by action %+v, %+v", a, got.Invokers[1].IdleActions)
	}
	if len(all.Queues) != 2 || len(all.Invokers[0].Idle) != 2 || len(all.Invokers[0].IdleActions) != 4 {
		t.Errorf("the cluster's own status changed: %+v", all)
	}
}
