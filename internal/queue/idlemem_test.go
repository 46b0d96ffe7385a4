package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/testenv"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// BenchmarkIdleQueueMemory reports what an idle queue keeps: b.N queues on
// the in-memory bus each take one activation through a container's fetch,
// go idle, and the Go heap and goroutine stacks are read after GCs. Run
// it with -benchtime 1000x; IDLE_HEAP_PROFILE=file also writes a heap
// profile of the idle queues (use -memprofilerate 1).
func BenchmarkIdleQueueMemory(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mb := memory.New(nil)
	defer mb.Close()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	qs := make([]*Queue, b.N)
	var wg sync.WaitGroup
	for i := range b.N {
		topic := fmt.Sprintf("t%d", i)
		if err := mb.EnsureTopic(ctx, topic); err != nil {
			b.Fatal(err)
		}
		q, err := New(Config{Action: meta(1), NamespaceLimit: 100, Park: 20 * time.Millisecond, IdleTimeout: time.Hour}, Deps{
			Now:             time.Now,
			Subscribe:       func(ctx context.Context) (bus.Consumer, error) { return mb.Subscribe(ctx, topic, "queue") },
			CountContainers: func(context.Context, int64) (int, error) { return 0, nil },
			CountNamespace:  func(context.Context) (int, int, error) { return 0, 0, nil },
			Create: func(r CreateRequest) {
				go func() { time.Sleep(time.Millisecond); qs[i].CreationDone(CreationResult{ID: r.ID, OK: true}) }()
			},
			Fail: func(context.Context, whisk.ActivationMessage, whisk.Activation) error { return nil },
		})
		if err != nil {
			b.Fatal(err)
		}
		qs[i] = q
		wg.Add(1)
		go func() { defer wg.Done(); _ = q.Run(ctx) }()
		m, _ := json.Marshal(activation(fmt.Sprintf("%032d", i), 1))
		if err := mb.Publish(ctx, topic, m); err != nil {
			b.Fatal(err)
		}
		r, err := q.Fetch(ctx, &rpc.FetchRequest{Namespace: "guest", Action: "hello", Rev: 1, Alive: true, ContainerID: "c1"})
		if err != nil || r.Status != rpc.FetchOK {
			b.Fatalf("fetch: %+v %v", r, err)
		}
	}
	testenv.Eventually(b, 30*time.Second, "every queue idle", func() bool {
		idle := 0
		for _, q := range qs {
			if q.State() == Idle {
				idle++
			}
		}
		return idle == b.N
	})
	time.Sleep(time.Second) // commits, parks
	for range 5 {
		runtime.GC()
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	n := float64(b.N)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heapB/queue")
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stackB/queue")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/queue")
	if path := os.Getenv("IDLE_HEAP_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
		_ = f.Close()
	}
	cancel()
	wg.Wait()
}
