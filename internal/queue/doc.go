// Package queue is one action's leader queue: the buffer of activations
// consumed from the action's bus topic, the long-poll hand-off to containers
// that fetch work, the state machine (Running, Idle, Flushing, Removing,
// Removed; README.md draws it), and Decide, the pure function that turns a
// Snapshot of the queue into a Decision: how many containers to ask for
// (OpenWhisk's scheduling rules, with a staleness threshold that follows
// the action's average duration) and the policies on that number (the
// namespace share demand, failing throttled activations, the Flushing
// retry pace).
//
// One goroutine owns a Queue (Run). Everything else talks to it through
// channels: Fetch hands it a container's request and waits for the reply,
// CreationDone reports a container creation's outcome, Stop and Abandon end
// it. A separate reader goroutine owns the bus consumer: it polls, forwards
// records to the owner and commits the offset the owner publishes — the
// highest offset up to which every activation was handed to a container or
// failed with a stored record, so a successor resumes with nothing lost.
// A queue that the bus fences off its topic (kind Conflict: a successor
// consumes now) ends at once; a successor skips activations it was handed
// again that already ran (their ids, Deps.Recorded). Ended says why a
// queue ended.
//
// The owner wakes for its periodic work only when it has some (a timer for
// its next duty: every tick while activations wait, the idle timeout when
// idle; README.md "Wake-ups"). Time comes from Deps.Now, and tests drive
// the ticks with Deps.Ticker, without sleeping.
//
// The files follow the owner's concerns: queue.go (lifecycle, the loop,
// the state it owns in small structs), reader.go (the reader goroutine
// and the commit watermark), handoff.go (buffer, fetches, duplicates),
// timers.go (tick and wake-ups), counts.go (count and share reads),
// scale.go (decisions and creations), failures.go (the queue's error
// records), lost.go (activations lost with their container), decide.go
// (Decide and Share, pure).
package queue
