// Package invoker is Eddy's invoker role: it turns container-creation
// requests from schedulers into running containers, within its memory
// budget, and gives each container one proxy goroutine that pulls the
// action's activations from the leader queue (rpc Fetch, a long poll), runs
// them through the runtime protocol (/init once, then /run), publishes each
// completion to the controller that is waiting for it and writes the
// activation record off the response path.
//
// The life of a container (docs/internals.md):
//
//	creation message → reserve memory → load the action (by revision)
//	  → Backend.Create → proxy: register in etcd → ack the scheduler
//	  → loop { Fetch → [/init] → /run → logs → completion → record }
//	  → idle for IdleTimeout, obsolete, broken or shut down:
//	    deregister → Fetch(alive=false) → remove → release memory
//
// A container is never paused: an idle one is removed. A container whose
// activation timed out, crashed or answered with a developer error is
// destroyed at once and the queue asks for a new one.
//
// An action with limits.concurrency N > 1 has N fetch/run loops per
// container (the proxy goroutine and N-1 extra slots, concurrent.go); the
// runtime tags each line of output with its activation, and a
// container.Demux gives each record its own logs.
//
// The invoker depends on small interfaces declared here (Bus, Session,
// Leaders, Actions, Runtimes) that cluster, bus, store and manifest satisfy,
// and on container.Backend.
package invoker
