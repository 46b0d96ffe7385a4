package controller

import "time"

// Observer is told of the invoke path's events, for the controller's
// metrics (internal/metrics implements it). Deps.Observer may be nil: then
// nothing is told. Its methods must be cheap and must not block: they run
// on the invoke path.
type Observer interface {
	// Published reports one activation message's publication on the bus:
	// how long Publish took, and its error (nil when it was written).
	Published(took time.Duration, err error)
	// Throttled reports an invocation of namespace (the caller's) refused
	// at a limit (whisk.LimitInvocationsPerMinute or
	// whisk.LimitConcurrentContainers).
	Throttled(namespace, limit string)
	// Waited reports how a blocking invocation's wait for its completion
	// ended (WaitCompleted, WaitTimedOut or WaitCancelled) and how long it
	// took.
	Waited(took time.Duration, outcome string)
}

// How a blocking wait ended (Observer.Waited).
const (
	WaitCompleted = "completed" // the completion arrived
	WaitTimedOut  = "timeout"   // the wait passed: the caller gets the id (202), or the record read after it
	WaitCancelled = "cancelled" // the caller went away
)

// noObserver is the Observer of a controller given none.
type noObserver struct{}

func (noObserver) Published(time.Duration, error) {}
func (noObserver) Throttled(string, string)       {}
func (noObserver) Waited(time.Duration, string)   {}
