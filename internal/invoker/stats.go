package invoker

import (
	"sync/atomic"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Stats are the invoker's figures for its metrics (internal/metrics).
type Stats struct {
	UserMemoryMB int64            // the memory it hands to containers
	FreeMemoryMB int64            // not reserved by a container nor a stem cell
	StemCellMB   int64            // held by idle stem cells
	Prewarm      int              // idle stem cells (started, uninitialised)
	Containers   int              // action containers with a proxy (warm or busy)
	Busy         int              // activations running in them now
	RunErrors    map[string]int64 // failed /run calls by kind (RunErr*)
}

// Kinds of failed /run calls (Stats.RunErrors).
const (
	RunErrTimeout    = "timeout"    // the action's time limit passed
	RunErrConnection = "connection" // the connection broke: the container died or is unusable
	RunErrExited     = "exited"     // the action process exited or was killed for memory
	RunErrStatus     = "status"     // the runtime answered with an error status
	RunErrShutdown   = "shutdown"   // the invoker stopped during the call
)

// invStats are the counters behind Stats.
type invStats struct {
	proxies, busy atomic.Int64
	runErr        [5]atomic.Int64 // by runErrKinds
}

var runErrKinds = [5]string{RunErrTimeout, RunErrConnection, RunErrExited, RunErrStatus, RunErrShutdown}

// Stats returns the invoker's figures now.
func (inv *Invoker) Stats() Stats {
	inv.mu.Lock()
	free := inv.free
	cellsMB, cells := inv.cells.idleLocked()
	inv.mu.Unlock()
	st := Stats{
		UserMemoryMB: inv.cfg.UserMemoryMB, FreeMemoryMB: free, StemCellMB: cellsMB,
		Containers: int(inv.stats.proxies.Load()), Busy: int(inv.stats.busy.Load()),
		RunErrors: make(map[string]int64, len(runErrKinds)),
	}
	for _, c := range cells {
		st.Prewarm += c.Count
	}
	for i, k := range runErrKinds {
		st.RunErrors[k] = inv.stats.runErr[i].Load()
	}
	return st
}

// runFailed counts a failed /run by kind: err is the call's error, out
// the outcome callFailed made of it.
func (st *invStats) runFailed(out outcome, err error, shuttingDown bool) {
	i := 3 // RunErrStatus
	switch {
	case shuttingDown && err != nil:
		i = 4
	case out.timedOut:
		i = 0
	case err != nil:
		i = 1
	case out.code == whisk.StatusDeveloperError && out.destroy:
		i = 2
	}
	st.runErr[i].Add(1)
}
