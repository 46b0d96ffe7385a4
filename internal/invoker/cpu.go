package invoker

// The invoker's view of its host's CPU, published in its registration
// (InvokerInfo.CPUBusyPct): the queues' throughput rule adds containers
// for a fast action's backlog only while the invokers' CPU is not
// saturated (internal/queue, Decide). Read from /proc/stat once a second,
// rounded to 5% so that the registration changes only when the load does;
// where /proc/stat cannot be read nothing is published (0).

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"time"
)

// cpuEvery is how often the host's CPU is sampled.
const cpuEvery = time.Second

// cpuTimes reads the host's total and idle (idle + iowait) jiffies.
func cpuTimes() (total, idle uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, false
	}
	for i, x := range f[1:] {
		v, err := strconv.ParseUint(string(x), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return total, idle, true
}

// busyPct is the busy share between two samples, in % rounded to 5, and
// at least 1: 0 means unknown (no valid sample) to the schedulers.
func busyPct(t0, i0, t1, i1 uint64) int {
	if t1 <= t0 {
		return 0
	}
	busy := 1 - float64(i1-i0)/float64(t1-t0)
	return min(100, max(1, int(busy*20+0.5)*5))
}

// cpuSampler updates the published CPU load once a second until ctx ends,
// and has the registrar look at the idle containers as often.
func (inv *Invoker) cpuSampler(ctx context.Context) {
	t0, i0, cpuOK := cpuTimes()
	tick := time.NewTicker(cpuEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pct := 0
		t1, i1, ok := cpuTimes()
		if ok && cpuOK {
			pct = busyPct(t0, i0, t1, i1)
		}
		t0, i0, cpuOK = t1, i1, ok
		inv.mu.Lock()
		inv.cpuPct = pct
		inv.mu.Unlock()
		// The registrar compares and writes only what changed: the load,
		// and containers idle for reclaim.idleAfter by now.
		select {
		case inv.memChanged <- struct{}{}:
		default:
		}
	}
}
