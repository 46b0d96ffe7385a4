// Package scheduler is a scheduler process: the QueueManager that hosts the
// leader queues of actions (internal/queue) and routes each container's
// Fetch to the right one, the gRPC server of internal/rpc (Fetch,
// CreateQueue), and the creator that turns the queues' requests for
// containers into ContainerCreation messages to invokers and their acks
// back into outcomes.
//
// It declares the small interfaces it needs of etcd (Session, Client), the
// bus (Bus) and the store (Activations); cmd/eddy wires internal/cluster,
// a bus and a store into them.
//
// Leadership: CreateQueue elects this scheduler with Session.ElectLeader
// (put-if-absent under its lease); the winner starts the queue, a loser
// answers with the current leader; on a live local queue it re-asserts the
// key. After a lease re-grant every local queue is re-elected, off the
// session's goroutine; a failed re-election is retried every second; a
// queue whose key someone else now holds is abandoned (it commits what it
// handed out, then stops). A queue that ends for any other reason resigns
// its key — retrying until it succeeds — before it leaves the manager's
// map, so a concurrent CreateQueue for the same action waits for it and
// never finds a leader key without a queue. A fetch that finds no queue
// while the leader key is this scheduler's re-creates the queue, and so
// does the reconciler, every 5 s and after a re-grant, for every leader key
// naming this scheduler without a local queue (OpenWhisk #5301: nothing
// else would consume the action's topic). A key naming this scheduler under
// a lease not its own (a predecessor with the same id, killed and
// restarted) serves the queue and is re-elected every second until that
// lease ends.
//
// Followers (follower.go): with Config.Followers > 0, the winner of an
// election asks that many other schedulers (fewest queues first) to follow
// the action (CreateQueue with rpc.RoleFollower); each writes its follower
// key, holds no activations and watches the leader key. A key that
// vanishes alone (lease expired, leader stopped) makes them elect; the
// winner's queue resumes from the committed offset and skips what already
// has a record. A queue that ends idle (or with its topic) retires its
// followers with its leader key (Session.RetireQueue); one that ends with
// the scheduler, or fenced off its topic by the bus, resigns only its own
// leader key. Leaders re-recruit missing followers every 5 s.
package scheduler
