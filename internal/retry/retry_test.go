package retry

import (
	"context"
	"testing"
	"time"
)

// TestBackoffDoublesWithJitter: each delay lies in [base, 1.25 base], the base
// doubling from Min to Max; Reset starts from Min again; the delays vary.
func TestBackoffDoublesWithJitter(t *testing.T) {
	b := New(100*time.Millisecond, 2*time.Second)
	bases := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	for i, ms := range bases {
		base := ms * time.Millisecond
		if d := b.Next(); d < base || d > base+base/4 {
			t.Fatalf("try %d: %v, want within [%v, %v]", i, d, base, base+base/4)
		}
	}
	b.Reset()
	if d := b.Next(); d < 100*time.Millisecond || d > 125*time.Millisecond {
		t.Fatalf("after Reset: %v", d)
	}
	seen := map[time.Duration]bool{}
	for range 50 {
		b.Reset()
		seen[b.Next()] = true
	}
	if len(seen) < 2 {
		t.Fatalf("50 first delays were all %v: no jitter", seen)
	}
}

// TestSleepEndsWithItsContext: Sleep returns false once ctx ends, without
// waiting for d, and true after d.
func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep on an ended context returned true")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep of 1ms returned false")
	}
	b := New(time.Hour, time.Hour)
	if b.Wait(ctx) {
		t.Fatal("Wait on an ended context returned true")
	}
}
