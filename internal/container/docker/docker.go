// Package docker is Eddy's container backend on a Docker Engine, through the
// Engine API's Go client (never the docker CLI). It runs each action
// container the way OpenWhisk's docker container factory does:
//
//   - on a bridge network of Eddy's own (Config.Network, default "eddy",
//     created when missing), reached by the invoker at the container's
//     address on that network, port 8080;
//   - with the action's memory as the memory limit and the same value as
//     memory+swap (so no swap on top), CPU shares proportional to memory
//     (CPUShares), nofile 1024:1024 and a pids limit of 1024;
//   - named after invoker, namespace and action (Spec.Name, sanitised) and
//     labelled eddy.invoker=<invoker id>, so that New removes what an earlier
//     run of the same invoker left behind and Close removes everything this
//     invoker runs.
//
// An image missing locally is pulled; a failed pull is an error of kind
// whisk.Invalid with OpenWhisk's message "Failed to pull container image
// 'X'.". An image present locally is used as it is, even when tagged
// latest (OpenWhisk pulls those anew; Eddy's hosts often reach no
// registry, so an operator makes an image present with docker load or a
// local build). Logs are the container's log stream (stdout and stderr, demuxed
// with stdcopy) with Docker's own timestamps. Exit status comes from the
// Engine's wait call and OOMKilled from inspecting the container.
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-units"

	eddyc "github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Labels the backend puts on what it creates.
const (
	// LabelInvoker names the invoker that owns a container.
	LabelInvoker = "eddy.invoker"
	// LabelManaged marks containers and networks Eddy created.
	LabelManaged = "eddy.managed"
)

// Defaults and fixed limits (OpenWhisk's docker factory uses the same
// nofile and pids values).
const (
	DefaultNetwork      = "eddy"
	DefaultMemoryMB     = 256
	DefaultPingTimeout  = 5 * time.Second
	DefaultPullTimeout  = 5 * time.Minute
	DefaultStartTimeout = time.Minute
	RuntimePort         = 8080
	NofileLimit         = 1024
	PidsLimit           = 1024
)

// CPUShares is the CPU weight of a container with memoryMB of memory:
// 1024 (Docker's default weight) per 256 MB, at least 2 (the kernel's
// minimum). A 256 MB action gets the default weight; a 512 MB one twice it.
// OpenWhisk derives shares from the memory share of the invoker's pool in
// the same proportional way.
func CPUShares(memoryMB int64) int64 {
	return max(memoryMB*1024/256, 2)
}

// Config configures the backend.
type Config struct {
	// InvokerID owns the containers (label eddy.invoker); required.
	InvokerID string
	// Network is the bridge network the containers join (default "eddy").
	Network string
	// Host is the Docker daemon address (default: $DOCKER_HOST, else the
	// local socket).
	Host string
	// PingTimeout bounds New's check that the daemon answers (default 5 s).
	PingTimeout time.Duration
	// PullTimeout bounds the pull of a missing image (default 5 min).
	PullTimeout time.Duration
	// StartTimeout bounds the wait for a started container's runtime to
	// accept connections on port 8080 (default 1 min).
	StartTimeout time.Duration
	Log          *slog.Logger
}

// Backend runs action containers on a Docker daemon.
type Backend struct {
	cfg       Config
	log       *slog.Logger
	cli       *client.Client
	networkID string
	seq       atomic.Uint64

	ctx    context.Context // ends at Close: the wait and log goroutines
	cancel context.CancelFunc

	mu     sync.Mutex
	live   map[string]*Container
	closed bool
}

var _ eddyc.Backend = (*Backend)(nil)

// ErrUnreachable is wrapped by New's error when the Docker daemon does not
// answer, so that callers (standalone's --backend auto) can fall back to
// another backend.
var ErrUnreachable = errors.New("the Docker daemon is unreachable")

// New connects to the daemon and checks that it answers (an error wrapping
// ErrUnreachable when it does not), creates the Eddy network when missing,
// and removes the containers an earlier run of the same invoker left.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.InvokerID == "" {
		return nil, errors.New("docker backend: no invoker id")
	}
	if cfg.Network == "" {
		cfg.Network = DefaultNetwork
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = DefaultPullTimeout
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cli, err := Dial(ctx, cfg.Host, cfg.PingTimeout)
	if err != nil {
		return nil, fmt.Errorf("docker backend: %w", err)
	}
	b := &Backend{cfg: cfg, log: log.With("backend", "docker"), cli: cli, live: map[string]*Container{}}
	if b.networkID, err = b.ensureNetwork(ctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker backend: network %s: %w", cfg.Network, err)
	}
	n, err := b.removeOwned(ctx)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker backend: removing containers of an earlier run: %w", err)
	}
	if n > 0 {
		b.log.Info("removed containers left by an earlier run", "invoker", cfg.InvokerID, "count", n)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// Dial opens an Engine API client for host ("" = $DOCKER_HOST or the local
// socket), negotiates the API version and checks within timeout that the
// daemon answers; when it does not, the error wraps ErrUnreachable.
func Dial(ctx context.Context, host string, timeout time.Duration) (*client.Client, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, cli.DaemonHost(), err)
	}
	cli.NegotiateAPIVersion(ctx)
	return cli, nil
}

// Name is "docker".
func (b *Backend) Name() string { return "docker" }

// Client is the backend's Engine API client (for tests and tools).
func (b *Backend) Client() *client.Client { return b.cli }

func (b *Backend) ensureNetwork(ctx context.Context) (string, error) {
	for range 2 {
		n, err := b.cli.NetworkInspect(ctx, b.cfg.Network, network.InspectOptions{})
		if err == nil {
			return n.ID, nil
		}
		if !cerrdefs.IsNotFound(err) {
			return "", err
		}
		resp, err := b.cli.NetworkCreate(ctx, b.cfg.Network, network.CreateOptions{
			Driver: "bridge",
			Labels: map[string]string{LabelManaged: "true"},
		})
		if err == nil {
			b.log.Info("created the container network", "network", b.cfg.Network)
			return resp.ID, nil
		}
		if !cerrdefs.IsConflict(err) {
			return "", err
		}
		// Another invoker created it meanwhile: inspect again.
	}
	return "", errors.New("created concurrently but cannot be inspected")
}

// Owned lists the ids of every container, running or not, labelled with invokerID.
func Owned(ctx context.Context, cli *client.Client, invokerID string) ([]string, error) {
	list, err := cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelInvoker+"="+invokerID)),
	})
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(list))
	for i, c := range list {
		ids[i] = c.ID
	}
	return ids, nil
}

// removeOwned force-removes every container labelled with this invoker.
func (b *Backend) removeOwned(ctx context.Context) (int, error) {
	ids, err := Owned(ctx, b.cli, b.cfg.InvokerID)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, id := range ids {
		if err := b.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return len(ids), errors.Join(errs...)
}

// Close removes every container of this invoker (those this backend
// created and any other labelled with its id) and closes the client.
// Create fails after Close.
func (b *Backend) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	live := make([]*Container, 0, len(b.live))
	for _, c := range b.live {
		live = append(live, c)
	}
	b.mu.Unlock()

	var errs []error
	for _, c := range live {
		if err := c.Remove(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := b.removeOwned(ctx); err != nil {
		errs = append(errs, err)
	}
	b.cancel()
	errs = append(errs, b.cli.Close())
	return errors.Join(errs...)
}

// containerName sanitises spec's name to Docker's [a-zA-Z0-9][a-zA-Z0-9_.-]*;
// an empty one becomes eddy_<invoker>_<seq>.
func (b *Backend) containerName(spec eddyc.Spec) string {
	name := spec.Name
	if name == "" {
		name = fmt.Sprintf("eddy_%s_%d", b.cfg.InvokerID, b.seq.Add(1))
	}
	out := []byte(name)
	for i, c := range out {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || (i > 0 && (c == '_' || c == '.' || c == '-'))
		if !ok {
			out[i] = '_'
		}
	}
	if out[0] == '_' {
		out = append([]byte("eddy"), out...)
	} else if len(out) < 2 { // Docker wants two characters at least
		out = append([]byte("eddy_"), out...)
	}
	return string(out)
}

// Create pulls the image when it is missing, creates and starts the
// container and returns once its runtime accepts TCP connections. A
// container that exits before that is an error carrying the end of its
// log; when ctx ends (or StartTimeout passes) the container is removed.
// Failures caused by the action (a failed pull; a blackbox image, one with
// no Launcher, that exits or never listens) have kind whisk.Invalid.
func (b *Backend) Create(ctx context.Context, spec eddyc.Spec) (eddyc.Container, error) {
	const op = "docker.Create"
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, whisk.E(op, whisk.Unavailable, "", errors.New("the docker backend is closed"))
	}
	if spec.Image == "" {
		return nil, whisk.E(op, whisk.Invalid, "", errors.New("no image"))
	}
	cfg, hostCfg, netCfg := b.containerConfig(spec)
	name := b.containerName(spec)
	// The image is looked for only when the daemon says it is missing: an
	// inspection before every create was a round trip to the daemon on
	// every cold start.
	resp, err := b.cli.ContainerCreate(ctx, cfg, hostCfg, netCfg, nil, name)
	if cerrdefs.IsNotFound(err) {
		if err := b.ensureImage(ctx, spec.Image); err != nil {
			return nil, err
		}
		resp, err = b.cli.ContainerCreate(ctx, cfg, hostCfg, netCfg, nil, name)
	}
	if cerrdefs.IsConflict(err) {
		// The name is taken (a container this backend does not know of):
		// keep the name's meaning, make it unique.
		name = fmt.Sprintf("%s_%d", name, time.Now().UnixNano()%1e6)
		resp, err = b.cli.ContainerCreate(ctx, cfg, hostCfg, netCfg, nil, name)
	}
	if err != nil {
		if spec.Launcher == "" && cerrdefs.IsInvalidArgument(err) {
			// The image's own fault (Docker: "No command specified"):
			// the developer's error, at once, not one to retry.
			return nil, whisk.E(op, whisk.Invalid, MsgCannotStart(spec.Image, dockerMessage(err)), err)
		}
		return nil, whisk.E(op, whisk.Internal, "", fmt.Errorf("create container %s from %s: %w", name, spec.Image, err))
	}
	c := &Container{b: b, id: resp.ID, name: name, logs: make(chan eddyc.LogLine, 256), done: make(chan struct{}), gone: make(chan struct{})}
	if !b.track(c) {
		_ = c.Remove(context.WithoutCancel(ctx))
		return nil, whisk.E(op, whisk.Unavailable, "", errors.New("the docker backend is closed"))
	}
	if err := c.start(ctx, spec); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rerr := c.Remove(rctx); rerr != nil {
			b.log.Warn("removing a container that failed to start", "container", name, "err", rerr)
		}
		return nil, err
	}
	b.log.Debug("container started", "container", name, "id", shortID(c.id), "addr", c.addr, "image", spec.Image)
	return c, nil
}

func (b *Backend) track(c *Container) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.live[c.id] = c
	return true
}

func (b *Backend) untrack(c *Container) {
	b.mu.Lock()
	delete(b.live, c.id)
	b.mu.Unlock()
}

// containerConfig is OpenWhisk's `docker run` of an action container as API structs.
func (b *Backend) containerConfig(spec eddyc.Spec) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	mem := spec.MemoryMB
	if mem <= 0 {
		mem = DefaultMemoryMB
	}
	env := make([]string, 0, len(spec.Env)+1)
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	if spec.Launcher != "" {
		// Eddy's runtime images read the launcher from the environment.
		env = append(env, "EDDY_LAUNCHER="+spec.Launcher)
	}
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[LabelInvoker] = b.cfg.InvokerID
	labels[LabelManaged] = "true"
	if spec.Kind != "" {
		labels["eddy.kind"] = spec.Kind
	}
	pids := int64(PidsLimit)
	cfg := &container.Config{Image: spec.Image, Env: env, Labels: labels}
	hostCfg := &container.HostConfig{
		NetworkMode: container.NetworkMode(b.cfg.Network),
		Resources: container.Resources{
			Memory:     mem << 20,
			MemorySwap: mem << 20, // memory+swap = memory: no swap on top
			CPUShares:  CPUShares(mem),
			PidsLimit:  &pids,
			Ulimits:    []*units.Ulimit{{Name: "nofile", Soft: NofileLimit, Hard: NofileLimit}},
		},
	}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		b.cfg.Network: {NetworkID: b.networkID},
	}}
	return cfg, hostCfg, netCfg
}

// Container is one Docker container running an action's runtime.
type Container struct {
	b    *Backend
	id   string
	name string
	addr string

	logs chan eddyc.LogLine
	done chan struct{} // closed when the container has exited
	gone chan struct{} // closed once removed: stops log delivery
	exit eddyc.ExitInfo

	rmu     sync.Mutex
	removed bool
}

var _ eddyc.Container = (*Container)(nil)

// ID is the Docker container id.
func (c *Container) ID() string { return c.id }

// Name is the Docker container name.
func (c *Container) Name() string { return c.name }

// Addr is the runtime's address on the Eddy network, ip:8080.
func (c *Container) Addr() string { return c.addr }

// Logs delivers the container's output, both streams, with Docker's
// timestamps; closed after the container exited and the stream is drained,
// or once the container is removed.
func (c *Container) Logs() <-chan eddyc.LogLine { return c.logs }

// Done is closed when the container has exited.
func (c *Container) Done() <-chan struct{} { return c.done }

// Exit is the exit code and whether the kernel's OOM killer ended the
// container; valid once Done is closed.
func (c *Container) Exit() eddyc.ExitInfo {
	select {
	case <-c.done:
		return c.exit
	default:
		return eddyc.ExitInfo{}
	}
}

// start registers the wait, starts the container, begins following its
// logs, and waits until the runtime accepts connections.
func (c *Container) start(ctx context.Context, spec eddyc.Spec) error {
	const op = "docker.Create"
	b := c.b
	blame := whisk.Internal // Eddy's own images failing is Eddy's fault
	if spec.Launcher == "" {
		blame = whisk.Invalid // a blackbox image failing is the action's
	}
	waitC, waitErr := b.cli.ContainerWait(b.ctx, c.id, container.WaitConditionNextExit)
	select {
	case err := <-waitErr:
		return whisk.E(op, whisk.Internal, "", fmt.Errorf("wait for container %s: %w", c.name, err))
	default:
	}
	go c.wait(waitC, waitErr)
	hr := c.attach(ctx)
	if err := b.cli.ContainerStart(ctx, c.id, container.StartOptions{}); err != nil {
		if hr != nil {
			hr.Close()
		}
		msg := ""
		if blame == whisk.Invalid { // e.g. an entrypoint that does not exist
			msg = MsgCannotStart(spec.Image, dockerMessage(err))
		}
		return whisk.E(op, blame, msg, fmt.Errorf("start container %s: %w", c.name, err))
	}
	go c.follow(hr)

	info, err := b.cli.ContainerInspect(ctx, c.id)
	if err != nil {
		return whisk.E(op, whisk.Internal, "", fmt.Errorf("inspect container %s: %w", c.name, err))
	}
	var ip string
	if info.NetworkSettings != nil {
		if ep := info.NetworkSettings.Networks[b.cfg.Network]; ep != nil {
			ip = ep.IPAddress
		}
	}
	if ip == "" {
		// Most likely the container exited already: its end says why.
		select {
		case <-c.done:
			return c.exitedEarly(ctx, op, blame, spec.Image)
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
		}
		return whisk.E(op, whisk.Internal, "", fmt.Errorf("container %s has no address on network %s", c.name, b.cfg.Network))
	}
	c.addr = net.JoinHostPort(ip, strconv.Itoa(RuntimePort))

	ready := b.cfg.StartTimeout
	if spec.ReadyTimeout > 0 {
		ready = spec.ReadyTimeout
	}
	deadline := time.NewTimer(ready)
	defer deadline.Stop()
	// A refused dial on the container's network costs microseconds: poll
	// often, so the wait ends within a few milliseconds of the runtime
	// listening (the delay grew to 100 ms before, which a runtime that
	// starts in 30-150 ms on a loaded machine often waited out).
	for delay := 2 * time.Millisecond; ; delay = min(delay*2, 8*time.Millisecond) {
		d := net.Dialer{Timeout: time.Second}
		conn, err := d.DialContext(ctx, "tcp", c.addr)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-c.done:
			return c.exitedEarly(ctx, op, blame, spec.Image)
		case <-ctx.Done():
			return whisk.E(op, whisk.Timeout, "", fmt.Errorf("container %s: runtime not ready at %s: %w", c.name, c.addr, ctx.Err()))
		case <-deadline.C:
			select {
			case <-c.done: // exited meanwhile: that is the reason
				return c.exitedEarly(ctx, op, blame, spec.Image)
			default:
			}
			msg := ""
			if blame == whisk.Invalid {
				msg = MsgNotListening(spec.Image, ready)
			}
			return whisk.E(op, blame, msg, fmt.Errorf("container %s from %s: nothing accepted connections on port %d within %s", c.name, spec.Image, RuntimePort, ready))
		case <-time.After(delay):
		}
	}
}

// exitedEarly is the error of a container that exited before its runtime
// listened, with the end of its log.
func (c *Container) exitedEarly(ctx context.Context, op string, kind whisk.Kind, image string) error {
	tail := c.logTail(context.WithoutCancel(ctx), 20)
	msg := fmt.Sprintf("container %s exited with code %d before its runtime accepted connections", c.name, c.exit.Code)
	if c.exit.OOMKilled {
		msg += " (out of memory)"
	}
	if tail != "" {
		msg += "; the end of its log:\n" + tail
	}
	user := ""
	if kind == whisk.Invalid {
		user = MsgExitedAtStart(image, c.exit.Code, tail)
	}
	return whisk.E(op, kind, user, errors.New(msg))
}

// MsgCannotStart is the developer error of a blackbox image Docker cannot
// create or start a container of (no command, a missing entrypoint...),
// with Docker's reason.
func MsgCannotStart(image, reason string) string {
	return fmt.Sprintf("Failed to start a container of image '%s': %s.", image, strings.TrimSuffix(reason, "."))
}

// MsgExitedAtStart is the developer error of a blackbox image whose
// container exited before it accepted connections on port 8080, with the
// end of its output.
func MsgExitedAtStart(image string, code int, tail string) string {
	msg := fmt.Sprintf("The container of image '%s' exited with code %d before it accepted connections on port %d.", image, code, RuntimePort)
	if tail != "" {
		msg += " The end of its output:\n" + tail
	}
	return msg
}

// MsgNotListening is the developer error of a blackbox image whose
// container accepted no connections on port 8080 within d.
func MsgNotListening(image string, d time.Duration) string {
	return fmt.Sprintf("The container of image '%s' did not accept connections on port %d within %s.", image, RuntimePort, d)
}

// dockerMessage is the daemon's own words in an Engine API error.
func dockerMessage(err error) string {
	s := err.Error()
	if i := strings.Index(s, "Error response from daemon: "); i >= 0 {
		s = s[i+len("Error response from daemon: "):]
	}
	return s
}

// wait turns the Engine's wait into Done and Exit.
func (c *Container) wait(waitC <-chan container.WaitResponse, errC <-chan error) {
	defer close(c.done)
	select {
	case r := <-waitC:
		c.exit.Code = int(r.StatusCode)
	case err := <-errC:
		c.exit.Code = -1
		if c.b.ctx.Err() == nil {
			c.b.log.Debug("waiting for a container failed", "container", c.name, "err", err)
		}
	}
	ictx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if info, err := c.b.cli.ContainerInspect(ictx, c.id); err == nil && info.State != nil {
		c.exit.OOMKilled = info.State.OOMKilled
		if c.exit.Code == -1 {
			c.exit.Code = info.State.ExitCode
		}
	}
}

// Remove kills and removes the container. Idempotent; a container already
// gone counts as removed.
func (c *Container) Remove(ctx context.Context) error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.removed {
		return nil
	}
	err := c.b.cli.ContainerRemove(ctx, c.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) && !isRemovalInProgress(err) {
		return fmt.Errorf("remove container %s: %w", c.name, err)
	}
	c.removed = true
	close(c.gone)
	c.b.untrack(c)
	// Let Done and Exit become valid before returning, within ctx.
	select {
	case <-c.done:
	case <-ctx.Done():
	}
	return nil
}

// Kill kills the container's processes (SIGKILL) and leaves it in place,
// so that its log stream delivers every line written before and then
// closes. A container that is not running any more is
// killed already.
func (c *Container) Kill(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	default:
	}
	err := c.b.cli.ContainerKill(ctx, c.id, "KILL")
	if err == nil || cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) { // conflict: not running
		return nil
	}
	return fmt.Errorf("kill container %s: %w", c.name, err)
}

// OOMKilled reports whether the kernel killed a process of the container
// for memory: the daemon's OOMKilled (set on the
// cgroup's OOM event) or, when the host's cgroup tree is readable, the
// cgroup's oom_kill counter (memory.events in cgroup v2, memory.oom_control
// in v1).
func (c *Container) OOMKilled(ctx context.Context) bool {
	if info, err := c.b.cli.ContainerInspect(ctx, c.id); err == nil && info.State != nil && info.State.OOMKilled {
		return true
	}
	for _, f := range cgroupOOMFiles(c.id) {
		if n, ok := readOOMKills(f); ok {
			return n > 0
		}
	}
	return false
}

// cgroupOOMFiles are where a container's oom_kill counter is on the host,
// for the cgroupfs and systemd drivers, cgroup v2 then v1.
func cgroupOOMFiles(id string) []string {
	return []string{
		"/sys/fs/cgroup/system.slice/docker-" + id + ".scope/memory.events",
		"/sys/fs/cgroup/docker/" + id + "/memory.events",
		"/sys/fs/cgroup/memory/docker/" + id + "/memory.oom_control",
		"/sys/fs/cgroup/memory/system.slice/docker-" + id + ".scope/memory.oom_control",
	}
}

// readOOMKills reads the "oom_kill N" line of a cgroup file.
func readOOMKills(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func isRemovalInProgress(err error) bool {
	return cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress")
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// MissingImages returns those of refs that are not present on the daemon.
func MissingImages(ctx context.Context, cli *client.Client, refs []string) ([]string, error) {
	var missing []string
	for _, ref := range refs {
		if _, err := cli.ImageInspect(ctx, ref); err != nil {
			if cerrdefs.IsNotFound(err) {
				missing = append(missing, ref)
				continue
			}
			return nil, fmt.Errorf("inspecting image %s: %w", ref, err)
		}
	}
	return missing, nil
}
