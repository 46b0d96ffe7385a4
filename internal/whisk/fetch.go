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
	// Seq numbers the container's fetches (from 1; 0: not numbered). A
	// queue keeps it with each hand-out, so that it can tell from a later
	// fetch's Unanswered that the answer never reached the container.
	Seq uint64 `json:"seq,omitempty"`
	// Unanswered are the numbers of the container's recent fetches that
	// ended without an answer (the call failed: the scheduler died, the
	// connection broke, the deadline passed). An activation a queue handed
	// to one of them never ran: it is handed out again, not failed later.
	Unanswered []SeqRange `json:"unanswered,omitempty"`
}

// SeqRange is the fetch numbers From..To, both included.
type SeqRange struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// UnansweredSeq says whether fetch number seq, older than this fetch, is in
// r.Unanswered.
func (r *FetchRequest) UnansweredSeq(seq uint64) bool {
	if seq == 0 || seq >= r.Seq {
		return false
	}
	for _, g := range r.Unanswered {
		if g.From <= seq && seq <= g.To {
			return true
		}
	}
	return false
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
	// Epoch is the leadership the activation was handed out under (a
	// queue with hand-over records; 0 otherwise). Epochs of an action
	// only grow: a container that saw a newer one refuses an older one's
	// activation (a stale leader's), as the last line of fencing.
	Epoch int64 `json:"epoch,omitempty"`
}
