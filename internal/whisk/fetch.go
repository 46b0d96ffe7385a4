package whisk

// FetchRequest asks an action's leader queue for the next activation: a
// container's long poll (the scheduler's Fetch).
type FetchRequest struct {
	Namespace   string `json:"namespace"`
	Action      string `json:"action"`
	Rev         int64  `json:"rev"`
	ContainerID string `json:"containerId"`
	InvokerID   string `json:"invokerId"`
	// LastDurationMs is the run time of the container's previous activation
	// (0 if none); the queue averages it for its scaling decisions.
	LastDurationMs int64 `json:"lastDurationMs,omitempty"`
	// Alive false says the container is going away: the queue forgets it
	// and returns no activation.
	Alive bool `json:"alive"`
	// Warm says the container has run this action before (it is initialised).
	Warm bool `json:"warm,omitempty"`
}

// Fetch outcomes.
const (
	FetchOK          = "ok"          // Activation is set
	FetchEmpty       = "empty"       // nothing arrived during the park; ask again
	FetchNoQueue     = "noQueue"     // this scheduler holds no queue for the action: re-read the leader
	FetchMismatch    = "mismatch"    // the action has a newer revision: this container is obsolete
	FetchUnavailable = "unavailable" // the queue is shutting down
	// FetchRelease: the namespace needs this container for another action
	// (its concurrent-containers limit is shared fairly): go away now, as
	// after an idle timeout. Sent only between activations.
	FetchRelease = "release"
)

// FetchResponse answers a FetchRequest.
type FetchResponse struct {
	Status     string             `json:"status"`
	Activation *ActivationMessage `json:"activation,omitempty"`
}
