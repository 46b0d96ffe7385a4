package queue

import "time"

// arrivalBucket and arrivalBuckets make the window over which the arrival
// rate is measured: 20 buckets of 100 ms.
const (
	arrivalBucket  = 100 * time.Millisecond
	arrivalBuckets = 20
	// ArrivalWindow is how far back the arrival rate looks.
	ArrivalWindow = arrivalBucket * arrivalBuckets
)

// arrivals counts the activations entering a queue, per 100 ms bucket
// over the last ArrivalWindow, for Snapshot.ArrivalRate. The owner
// goroutine alone uses it.
type arrivals struct {
	counts [arrivalBuckets]int
	n      int   // the sum of counts
	newest int64 // bucket number (time ÷ arrivalBucket) of the newest bucket; 0: none yet
	// since is when the current flow began: the first arrival after a
	// whole window without one. A queue stepped from idle to a rate
	// measures the rate over the time since, not over a window that is
	// still mostly empty.
	since time.Time
}

// add counts one arrival at at (when the activation was published, which
// may be earlier than now: messages published before the queue began
// reading arrive together), as seen at now; one older than the window is
// not counted.
func (a *arrivals) add(at, now time.Time) {
	if a.total(now) == 0 {
		a.since = at
	}
	a.since = minTime(a.since, at)
	b := at.UnixNano() / int64(arrivalBucket)
	if b > a.newest || a.newest-b >= arrivalBuckets {
		return // ahead of now (clocks), or out of the window
	}
	a.counts[b%arrivalBuckets]++
	a.n++
}

func minTime(x, y time.Time) time.Time {
	if y.Before(x) {
		return y
	}
	return x
}

// perSecond is the arrival rate: the arrivals in the window ÷ the time the
// window covers (since the flow began, at least one bucket); 0 when none
// arrived within the window.
func (a *arrivals) perSecond(now time.Time) float64 {
	n := a.total(now)
	if n == 0 {
		return 0
	}
	span := min(ArrivalWindow, max(now.Sub(a.since), arrivalBucket))
	return float64(n) / span.Seconds()
}

// total is the arrivals within the window ending at now.
func (a *arrivals) total(now time.Time) int {
	a.advance(now)
	return a.n
}

// advance moves the window's end to now's bucket, emptying the buckets it
// passes.
func (a *arrivals) advance(now time.Time) {
	b := now.UnixNano() / int64(arrivalBucket)
	if a.newest == 0 || b-a.newest >= arrivalBuckets {
		a.counts, a.n = [arrivalBuckets]int{}, 0
		a.newest = b
		return
	}
	for ; a.newest < b; a.newest++ {
		i := (a.newest + 1) % arrivalBuckets
		a.n -= a.counts[i]
		a.counts[i] = 0
	}
}
