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
// answers with the current leader. After a lease re-grant every local
// queue is re-elected; a queue whose key someone else now holds is
// abandoned (it commits nothing more). A queue that ends for any other
// reason resigns its key before it leaves the manager's map, so a
// concurrent CreateQueue for the same action waits for it and never finds
// a leader key without a queue.
package scheduler
