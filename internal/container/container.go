// Package container defines how Eddy runs action containers: a Backend
// creates containers that serve the OpenWhisk runtime protocol (/init and
// /run on one address), streams their stdout and stderr, and removes them.
// Implementations: container/process (a runtime server as a local child
// process; no isolation) and container/docker (the Docker Engine API).
//
// The package also holds what every backend shares: the runtime-protocol
// client (Client) and the sentinel-based log collector (CollectLogs).
package container

import (
	"context"
	"time"
)

// Spec says what container to create.
type Spec struct {
	// Name is unique per backend and says invoker, namespace and action.
	Name string
	// Kind is a resolved runtime kind ("python:3.11", "blackbox", ...).
	Kind string
	// Image is the image to run (Docker); the process backend ignores it.
	Image string
	// Launcher says how the runtime server runs the code ("python",
	// "native"; from the runtime manifest); the process backend passes it to
	// the runtime server it starts.
	Launcher string
	// MemoryMB is the memory limit.
	MemoryMB int64
	// Env is extra environment for the runtime (e.g. __OW_API_HOST).
	Env map[string]string
	// Labels are attached where the backend supports them (Docker).
	Labels map[string]string
	// ReadyTimeout bounds the wait for the runtime to accept connections
	// (0: the backend's default). The invoker gives a blackbox image its
	// action's time limit, as OpenWhisk gives its /init.
	ReadyTimeout time.Duration
}

// Backend creates and removes containers.
type Backend interface {
	// Name says which backend this is ("process", "docker").
	Name() string
	// Create creates and starts a container and returns once its runtime
	// accepts connections on Addr, or ctx ends. A failure whose cause is the
	// action (bad image, unknown kind) has kind Invalid.
	Create(ctx context.Context, spec Spec) (Container, error)
	// Close removes every container this backend created and still runs.
	Close(ctx context.Context) error
}

// Container is one running container.
type Container interface {
	ID() string
	// Addr is host:port of the runtime protocol.
	Addr() string
	// Logs delivers every line the container writes, both streams, in
	// order per stream; it is closed after the container exits and its
	// output is drained. It must be read, or the container may block.
	Logs() <-chan LogLine
	// Done is closed when the container has exited.
	Done() <-chan struct{}
	// Exit describes how it exited; valid once Done is closed.
	Exit() ExitInfo
	// Remove stops (killing if needed) and removes the container. Idempotent.
	Remove(ctx context.Context) error
	// Kill stops the container at once without losing its output: it
	// kills its processes, and Logs then delivers every line they wrote
	// before it closes. Remove is still needed afterwards.
	Kill(ctx context.Context) error
	// OOMKilled tells, while the container still runs, whether the
	// kernel killed a process in it for memory (its cgroup counted an OOM
	// kill): an action's child killed inside an image whose proxy lives
	// on. A backend without a memory cgroup per container (process)
	// reports false.
	OOMKilled(ctx context.Context) bool
}

// Streams.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// LogLine is one line of container output without its newline.
type LogLine struct {
	Time   time.Time
	Stream string
	Text   string
}

// ExitInfo is how a container ended.
type ExitInfo struct {
	Code      int
	OOMKilled bool
}

// Sentinel is the line a runtime writes to both streams after each /run
// (and after a failed /init; never after a successful one, OpenWhisk's
// runtimes do not).
const Sentinel = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
