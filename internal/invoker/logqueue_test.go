package invoker

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
)

// Collections started while an older one still waits for its sentinels
// (early completions) queue behind it: each takes the lines up to its own
// sentinels, in order, read concurrently.
func TestLogPumpQueuesCollections(t *testing.T) {
	in := make(chan container.LogLine, 100)
	lp := startLogPump(in)
	defer lp.stop()
	var cur container.LogCursor
	line := func(stream, text string) { in <- container.LogLine{Time: time.Now(), Stream: stream, Text: text} }
	end := func() {
		line(container.Stdout, container.Sentinel)
		line(container.Stderr, container.Sentinel)
	}
	const n = 4
	results := make([][]string, n)
	var wg sync.WaitGroup
	for i := range n {
		lc := lp.startCollection(context.Background(), &cur, 1<<20)
		wg.Add(1)
		go func() {
			defer wg.Done()
			logs, complete := lc.waitLogs(10 * time.Second)
			if !complete {
				t.Errorf("collection %d incomplete: %q", i, logs)
			}
			results[i] = logs
		}()
	}
	for i := range n {
		line(container.Stdout, "run "+string(rune('a'+i)))
		line(container.Stderr, "err "+string(rune('a'+i)))
		end()
	}
	wg.Wait()
	for i, logs := range results {
		c := string(rune('a' + i))
		if len(logs) != 2 || !strings.HasSuffix(logs[0], "stdout: run "+c) || !strings.HasSuffix(logs[1], "stderr: err "+c) {
			t.Errorf("collection %d: %q", i, logs)
		}
	}
}

// An older collection that stops waiting before its sentinels hands its
// debt to the one behind it: the late lines are skipped, not taken.
func TestLogPumpQueuedCollectionTakesDebt(t *testing.T) {
	in := make(chan container.LogLine, 100)
	lp := startLogPump(in)
	defer lp.stop()
	var cur container.LogCursor
	line := func(stream, text string) { in <- container.LogLine{Time: time.Now(), Stream: stream, Text: text} }
	a := lp.startCollection(context.Background(), &cur, 1<<20)
	b := lp.startCollection(context.Background(), &cur, 1<<20)
	line(container.Stdout, "a's line")
	// a gives up before its sentinels come (its wait passes).
	if logs, complete := a.waitLogs(50 * time.Millisecond); complete || len(logs) > 1 {
		t.Fatalf("a: %q %v", logs, complete)
	}
	line(container.Stdout, "a's late line")
	line(container.Stdout, container.Sentinel)
	line(container.Stderr, container.Sentinel)
	line(container.Stdout, "b's line")
	line(container.Stdout, container.Sentinel)
	line(container.Stderr, container.Sentinel)
	logs, complete := b.waitLogs(10 * time.Second)
	if !complete || len(logs) != 1 || !strings.HasSuffix(logs[0], "stdout: b's line") {
		t.Fatalf("b: %q %v", logs, complete)
	}
}
