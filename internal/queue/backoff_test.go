package queue

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestCreationFailuresBackOffQuietly: while no invoker has room, a queue
// with a backlog asks again after a back-off that doubles (100 ms to
// Config.CreateBackoff, 2 s), not at every tick, and writes the failure
// warning once per interval with a count, not once per failure; a success
// starts the back-off again from 100 ms.
func TestCreationFailuresBackOffQuietly(t *testing.T) {
	h := newHarness(t)
	var logs bytes.Buffer
	h.q.log = slog.New(slog.NewTextHandler(&logs, nil))
	h.containers = 1
	for i := range 20 {
		h.msgWith(int64(i), activation(strings.Repeat("b", 30)+string(rune('a'+i/10))+string(rune('a'+i%10)), 1))
	}
	h.advance(time.Second) // every activation is stale
	handled, asked, failures := 0, 0, 0
	const ticks = 100 // 10 s
	for range ticks {
		h.advance(100 * time.Millisecond)
		h.tick()
		if len(h.creates) > handled {
			asked++
		}
		for ; handled < len(h.creates); handled++ {
			h.q.handleResult(h.now, &CreationResult{ID: h.creates[handled].ID, Error: "No invoker can host a container of 256 MB."})
			failures++
		}
	}
	// 0.1, 0.2, 0.4, 0.8, 1.6, 2 s... apart: about 9 rounds in 10 s.
	if asked == 0 || asked > ticks/5 {
		t.Errorf("asked for containers in %d of %d ticks while every creation failed; want a back-off (≤ %d)", asked, ticks, ticks/5)
	}
	lines := strings.Count(logs.String(), "container creation failed")
	// One line, then one per 5 s interval (lograte.DefaultEvery) at most.
	if lines == 0 || lines > 3 || failures < 2*lines {
		t.Errorf("%d warnings for %d failures in 10 s; want at most 3:\n%s", lines, failures, logs.String())
	}
	if !strings.Contains(logs.String(), "repeats=") {
		t.Errorf("no repeat count in the warnings:\n%s", logs.String())
	}
	// A success starts the back-off again: the next failure holds ~100 ms.
	h.advance(3 * time.Second)
	h.tick()
	if len(h.creates) == handled {
		t.Fatal("no creation after the back-off")
	}
	h.q.handleResult(h.now, &CreationResult{ID: h.creates[handled].ID, OK: true})
	for handled++; handled < len(h.creates); handled++ {
		h.q.handleResult(h.now, &CreationResult{ID: h.creates[handled].ID, Error: "No invoker can host a container of 256 MB."})
	}
	if hold := h.q.holdUntil.Sub(h.now); hold > 125*time.Millisecond {
		t.Errorf("after a success the next failure holds %v, want ≤ 125 ms", hold)
	}
}
