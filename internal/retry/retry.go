// Package retry is how Eddy's goroutines wait before they try again: one
// exponential backoff with jitter (Backoff) and one sleep that ends with
// its context (Sleep). Jitter spreads the retries of many goroutines (the
// queues of one scheduler, the schedulers of a cluster) that failed at
// the same moment, so they do not hit etcd or the bus in step.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff with jitter. The zero value is not
// useful: set Min and Max. Each Next doubles the base delay, from Min up to
// Max, and returns a delay drawn uniformly from [base, base + base/4]: the
// jitter only adds, so a retry never comes sooner than the base (100 ms,
// 200 ms, 400 ms... as documented where one is used), and goroutines that
// failed together drift apart. Reset starts again from Min (after a
// success). Not safe for concurrent use: one per retry loop.
type Backoff struct {
	Min, Max time.Duration
	base     time.Duration
}

// New is a Backoff from lo to hi.
func New(lo, hi time.Duration) *Backoff { return &Backoff{Min: lo, Max: hi} }

// Next is the delay before the next try.
func (b *Backoff) Next() time.Duration {
	switch {
	case b.base <= 0:
		b.base = b.Min
	default:
		b.base = min(2*b.base, b.Max)
	}
	return b.base + rand.N(b.base/4+1)
}

// Reset makes the next delay Min again.
func (b *Backoff) Reset() { b.base = 0 }

// Sleep waits for d; false, at once, when ctx ends first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Wait sleeps for b.Next(); false when ctx ends first.
func (b *Backoff) Wait(ctx context.Context) bool { return Sleep(ctx, b.Next()) }
