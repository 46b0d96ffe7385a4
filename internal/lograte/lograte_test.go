package lograte_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/lograte"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestOneLinePerCausePerInterval: 1,000 occurrences of one cause within an
// interval write one line; the next interval's first line counts the 999
// others; another cause is independent.
func TestOneLinePerCausePerInterval(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := lograte.New(time.Second, clk.now)
	for range 1000 {
		l.Warn(log, "no invoker", "no invoker for a container")
		clk.add(time.Millisecond / 2)
	}
	l.Warn(log, "other", "another cause")
	clk.add(time.Second)
	l.Warn(log, "no invoker", "no invoker for a container")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	if strings.Contains(lines[0], "repeats") || !strings.Contains(lines[2], "repeats=999") {
		t.Errorf("lines:\n%s", buf.String())
	}
}

// TestConcurrentCounts: concurrent occurrences are all counted, under
// -race: the written lines plus their repeats are every occurrence.
func TestConcurrentCounts(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := lograte.New(time.Second, clk.now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				if n, ok := l.Allow("x"); ok {
					mu.Lock()
					total += 1 + n
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	clk.add(time.Second)
	n, ok := l.Allow("x")
	if !ok {
		t.Fatal("not allowed after the interval")
	}
	if total+n+1 != 4001 {
		t.Errorf("counted %d occurrences, want 4001", total+n+1)
	}
}
