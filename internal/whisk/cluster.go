package whisk

import (
	"slices"
	"strings"
)

// The values processes publish about themselves in etcd (see
// internal/cluster/keys.go for the keys, their writers and their readers).

// SchedulerInfo is a scheduler's registration: where to reach it and how
// loaded it is (the number of leader queues it hosts).
type SchedulerInfo struct {
	ID     string `json:"id"`
	Addr   string `json:"addr"` // gRPC host:port
	Queues int    `json:"queues"`
}

// Invoker statuses.
const (
	InvokerUp        = "up"
	InvokerUnhealthy = "unhealthy"
	InvokerDown      = "down"
)

// InvokerInfo is an invoker's registration: health and memory in MB.
// FreeMemory counts the prewarm stem cells as used; StemCellMemory is the
// part of the used memory held by idle stem cells, which give way to a
// real container that needs it (see Available).
type InvokerInfo struct {
	ID             string     `json:"id"`
	Status         string     `json:"status"`
	UserMemory     int64      `json:"userMemory"`
	FreeMemory     int64      `json:"freeMemory"`
	StemCellMemory int64      `json:"stemCellMemory,omitempty"`
	StemCells      []StemCell `json:"stemCells,omitempty"`
	Tags           []string   `json:"tags,omitempty"`
	Backend        string     `json:"backend,omitempty"`
	// IdleMemory is the part of the used memory held by idle warm
	// containers (no activation since their last fetch came back empty),
	// which the invoker removes, least recently used first, for a creation
	// that finds too little memory (see Reclaimable); Idle counts them by
	// namespace (a namespace at its container limit gives one of its own
	// up to a new action of its: ContainerCreation.SwapNamespace).
	IdleMemory int64          `json:"idleMemory,omitempty"`
	Idle       map[string]int `json:"idle,omitempty"`
	// IdleActions counts the same idle containers by action (FQN.String):
	// the status shows each queue's containers as idle or busy.
	IdleActions map[string]int `json:"idleActions,omitempty"`
	// CPUBusyPct is the invoker host's CPU load over the last second, in %
	// rounded to 5 (0 when unknown): the queues add containers for a fast
	// action's backlog only while it is below queue.CPUBrakePct.
	CPUBusyPct int `json:"cpuBusyPct,omitempty"`
}

// Available is the memory a new container can get on the invoker: the free
// memory plus what idle stem cells would give up.
func (i InvokerInfo) Available() int64 { return i.FreeMemory + i.StemCellMemory }

// Reclaimable is Available plus the memory of idle warm containers, which
// the invoker removes when a creation needs it.
func (i InvokerInfo) Reclaimable() int64 { return i.Available() + i.IdleMemory }

// StemCell counts an invoker's idle prewarm containers of one kind and
// memory (started, not initialised, belonging to no action).
type StemCell struct {
	Kind     string `json:"kind"`
	MemoryMB int64  `json:"memory"`
	Count    int    `json:"count"`
}

// LeaderInfo names the scheduler that holds an action's leader queue.
type LeaderInfo struct {
	SchedulerID string `json:"schedulerId"`
	Addr        string `json:"addr"`
}

// ContainerInfo is one running container of an action, registered by its
// proxy while it is able to take work.
type ContainerInfo struct {
	Namespace   string `json:"namespace"`
	Action      string `json:"action"`
	Rev         int64  `json:"rev"`
	InvokerID   string `json:"invokerId"`
	ContainerID string `json:"containerId"`
	Addr        string `json:"addr,omitempty"`
	MemoryMB    int64  `json:"memory"`
	Started     int64  `json:"started"` // epoch ms
}

// FQN returns the action the container runs.
func (c ContainerInfo) FQN() FQN { return FQN{Namespace: c.Namespace, Name: c.Action} }

// CreationInfo is one in-flight container creation, registered by the
// scheduler that asked for it until the invoker acknowledges it or it times out.
type CreationInfo struct {
	Namespace   string `json:"namespace"`
	Action      string `json:"action"`
	Rev         int64  `json:"rev"`
	SchedulerID string `json:"schedulerId"`
	CreationID  string `json:"creationId"`
	InvokerID   string `json:"invokerId"`
	Requested   int64  `json:"requested"` // epoch ms
}

// ClusterStatus is a snapshot of what the processes of a cluster publish in
// etcd, read at one etcd revision (cluster.Client.Status): what `eddy
// status` prints and GET /eddy/v1/status returns.
type ClusterStatus struct {
	Revision   int64           `json:"revision"` // the etcd revision read
	Schedulers []SchedulerInfo `json:"schedulers"`
	Invokers   []InvokerInfo   `json:"invokers"`
	Queues     []QueueStatus   `json:"queues"`
}

// QueueStatus is one action's queue as etcd shows it: its leader, its
// followers, its registered containers (every revision) and its in-flight
// container creations. An action with containers or creations but no
// leader key (its leader just died) is listed with an empty Leader.
type QueueStatus struct {
	Namespace  string   `json:"namespace"`
	Action     string   `json:"action"`
	Leader     string   `json:"leader,omitempty"` // scheduler id
	LeaderAddr string   `json:"leaderAddr,omitempty"`
	Followers  []string `json:"followers,omitempty"` // scheduler ids
	Containers int      `json:"containers"`
	// Idle is how many of Containers are warm and run nothing (their
	// invokers' IdleActions); the rest are busy or about to fetch.
	Idle      int `json:"idle"`
	Creations int `json:"creations"`
}

// Handout is one activation a leader queue handed to a container, recorded
// in etcd before the container is answered so that a successor leader
// neither runs it again nor forgets it (docs/internals.md, "In-flight
// hand-over"). Message is the activation without its parameters and key:
// enough to make its error record and complete it.
type Handout struct {
	InvokerID   string `json:"invokerId"`
	ContainerID string `json:"containerId"`
	HandedAt    int64  `json:"handedAt"` // epoch ms
	Warm        bool   `json:"warm"`     // the container had run the action before
	Epoch       int64  `json:"epoch"`    // the leadership that handed it out
	// Seq is the number of the container's fetch it answered
	// (FetchRequest.Seq): the container's later fetches say whether the
	// answer reached it.
	Seq     uint64            `json:"seq,omitempty"`
	Message ActivationMessage `json:"message"`
}

// ForNamespace is st as a key of namespace may see it: the queues of its
// own namespace, and of each invoker's idle containers only its own count
// (other tenants' namespaces and action names are not its business).
func (st ClusterStatus) ForNamespace(namespace string) ClusterStatus {
	st.Queues = slices.DeleteFunc(slices.Clone(st.Queues), func(q QueueStatus) bool { return q.Namespace != namespace })
	st.Invokers = slices.Clone(st.Invokers)
	for i := range st.Invokers {
		inv := &st.Invokers[i]
		if n, ok := inv.Idle[namespace]; ok {
			inv.Idle = map[string]int{namespace: n}
		} else {
			inv.Idle = nil
		}
		own := map[string]int{}
		for a, n := range inv.IdleActions {
			if strings.HasPrefix(a, namespace+"/") {
				own[a] = n
			}
		}
		inv.IdleActions = nil
		if len(own) > 0 {
			inv.IdleActions = own
		}
	}
	return st
}
