package invoker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/whisk"
	"go.opentelemetry.io/otel/trace"
)

// Config configures an invoker. Zero durations and sizes take the defaults.
type Config struct {
	// ID names the invoker (etcd key, topic, container names). Required.
	ID string
	// UserMemoryMB is the memory budget for containers (default 2048).
	UserMemoryMB int64
	// IdleTimeout removes a container that got no activation for this long
	// (default 10 s).
	IdleTimeout time.Duration
	// APIHost is passed to containers as __OW_API_HOST.
	APIHost string
	// LogWait is how long to wait for the log sentinels after /init or /run
	// (default 2 s).
	LogWait time.Duration
	// LeaderRetry is how long a proxy keeps looking for its action's leader
	// queue after fetches fail before it gives its container up (default 5 s).
	LeaderRetry time.Duration
	// ShutdownGrace is how long running activations may go on after Run's
	// context ends before they are failed (default 5 s).
	ShutdownGrace time.Duration
	// MaxResult is the largest result in bytes (default 1 MB).
	MaxResult int
	// Tags are published with the invoker's registration.
	Tags []string
	// StemCells are the prewarm settings (see prewarm.go); none by default.
	StemCells []StemCell
}

// Defaults.
const (
	DefaultUserMemoryMB = 2048
	DefaultIdleTimeout  = 10 * time.Second
	DefaultLogWait      = 2 * time.Second
	// minReadyTimeout is the least time a blackbox image gets to accept
	// connections on port 8080.
	minReadyTimeout      = 5 * time.Second
	DefaultLeaderRetry   = 5 * time.Second
	DefaultShutdownGrace = 5 * time.Second
	DefaultMaxResult     = 1 << 20
	defaultMemoryMB      = 256 // for a creation message without a memory limit
)

// Bus is what the invoker needs of the message bus (bus.Bus satisfies it).
type Bus interface {
	EnsureTopic(ctx context.Context, topic string) error
	Subscribe(ctx context.Context, topic, group string) (bus.Consumer, error)
	Publish(ctx context.Context, topic string, value []byte) error
}

// Session is what the invoker needs of its etcd lease session
// (*cluster.Session satisfies it): every key goes under the invoker's lease.
type Session interface {
	RegisterInvoker(ctx context.Context, info whisk.InvokerInfo) error
	RegisterContainer(ctx context.Context, info whisk.ContainerInfo) error
	DeregisterContainer(ctx context.Context, info whisk.ContainerInfo) error
}

// Leaders finds the scheduler holding an action's leader queue
// (*cluster.Client satisfies it).
type Leaders interface {
	Leader(ctx context.Context, f whisk.FQN) (whisk.LeaderInfo, bool, error)
}

// Actions loads action code and stores activation records (store.Store
// satisfies it).
type Actions interface {
	GetAction(ctx context.Context, namespace, name string) (whisk.Action, error)
	PutActivation(ctx context.Context, a whisk.Activation) error
}

// Runtimes resolves a kind to its runtime (*manifest.Manifest satisfies it).
type Runtimes interface {
	Lookup(kind string) (manifest.Runtime, bool)
	// DefaultImage is the blackbox image of "native" actions (OpenWhisk's
	// dockerskeleton).
	DefaultImage() string
}

// Deps are the invoker's collaborators. Log and Now are optional.
type Deps struct {
	Log      *slog.Logger
	Bus      Bus               // creation requests in; acks and completions out
	Session  Session           // the invoker's one lease: its own key and its containers'
	Leaders  Leaders           // where an action's queue went when a fetch fails
	Backend  container.Backend // creates and removes containers
	Actions  Actions           // action code by revision; activation records
	Runtimes Runtimes          // kind → launcher and image
	Now      func() time.Time
	// Local are the schedulers of this process by their advertised address
	// (standalone): fetches to them are direct calls, not gRPC.
	Local map[string]Fetcher
	// Credentials secure the gRPC calls to schedulers: credentials.NewTLS
	// of a pki.Files.Config for mutual TLS, insecure.NewCredentials() for
	// plaintext.
	Credentials credentials.TransportCredentials
	// Tracer records the spans of traced activations (trace.go); nil:
	// none (their records still carry the trace id).
	Tracer trace.Tracer
}

// Invoker runs containers for schedulers.
type Invoker struct {
	cfg  Config
	d    Deps
	log  *slog.Logger
	now  func() time.Time
	recs *recordWriter
	pool *connPool

	mu      sync.Mutex
	free    int64 // MB not reserved by a container
	seq     int   // container name counter
	topics  map[string]bool
	running bool

	cells      *stemPool           // prewarm stem cells, guarded by mu
	warm       map[*proxy]struct{} // warm containers in service, guarded by mu (reclaim.go)
	cpuPct     int                 // the host's CPU busy %, guarded by mu (cpu.go)
	memChanged chan struct{}       // capacity 1: the registration is stale
	procs      sync.WaitGroup
	hard       context.Context // ends ShutdownGrace after Run's context
	stats      invStats        // counters behind Stats (stats.go)
}

// New checks the configuration and dependencies.
func New(cfg Config, d Deps) (*Invoker, error) {
	if cfg.ID == "" {
		return nil, errors.New("invoker: Config.ID is required")
	}
	if d.Bus == nil || d.Session == nil || d.Leaders == nil || d.Backend == nil || d.Actions == nil || d.Runtimes == nil ||
		d.Credentials == nil {
		return nil, errors.New("invoker: Deps.Bus, Session, Leaders, Backend, Actions, Runtimes and Credentials are required")
	}
	if cfg.UserMemoryMB <= 0 {
		cfg.UserMemoryMB = DefaultUserMemoryMB
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.LogWait <= 0 {
		cfg.LogWait = DefaultLogWait
	}
	if cfg.LeaderRetry <= 0 {
		cfg.LeaderRetry = DefaultLeaderRetry
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.MaxResult <= 0 {
		cfg.MaxResult = DefaultMaxResult
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	log := d.Log.With("invoker", cfg.ID)
	inv := &Invoker{
		cfg:        cfg,
		d:          d,
		log:        log,
		now:        d.Now,
		free:       cfg.UserMemoryMB,
		topics:     map[string]bool{},
		cells:      newStemPool(cfg.StemCells),
		warm:       map[*proxy]struct{}{},
		memChanged: make(chan struct{}, 1),
	}
	inv.recs = newRecordWriter(d.Actions, log)
	inv.pool = newConnPool(d.Local, d.Credentials)
	return inv, nil
}

// FreeMemoryMB is the memory not reserved by containers.
func (inv *Invoker) FreeMemoryMB() int64 {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.free
}

// Run registers the invoker, serves creation requests until ctx ends, then
// shuts down: it stops taking creations, lets running activations finish
// within ShutdownGrace (failing the rest with a whisk internal error
// record), removes every container, and flushes the records. It returns
// once every goroutine it started has ended.
func (inv *Invoker) Run(ctx context.Context) error {
	inv.mu.Lock()
	if inv.running {
		inv.mu.Unlock()
		return errors.New("invoker: Run called twice")
	}
	inv.running = true
	inv.mu.Unlock()

	topic := whisk.InvokerTopic(inv.cfg.ID)
	if err := inv.d.Bus.EnsureTopic(ctx, topic); err != nil {
		return fmt.Errorf("invoker: ensure topic %s: %w", topic, err)
	}
	if err := inv.d.Session.RegisterInvoker(ctx, inv.info(whisk.InvokerUp)); err != nil {
		return fmt.Errorf("invoker: register: %w", err)
	}
	cons, err := inv.d.Bus.Subscribe(ctx, topic, "invoker")
	if err != nil {
		return fmt.Errorf("invoker: subscribe %s: %w", topic, err)
	}

	// hard ends ShutdownGrace after ctx: activations still running then fail.
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	inv.hard = hard
	graceDone := make(chan struct{})
	go func() {
		defer close(graceDone)
		select {
		case <-ctx.Done():
		case <-hard.Done():
			return
		}
		t := time.NewTimer(inv.cfg.ShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			hardCancel()
		case <-hard.Done():
		}
	}()

	recsDone := make(chan struct{})
	go func() { defer close(recsDone); inv.recs.run() }()
	regDone := make(chan struct{})
	go func() { defer close(regDone); inv.registrar(ctx) }()
	cpuDone := make(chan struct{})
	go func() { defer close(cpuDone); inv.cpuSampler(ctx) }()

	inv.procs.Add(1)
	go func() { defer inv.procs.Done(); inv.prewarmer(ctx) }()

	inv.log.Info("invoker started", "memoryMB", inv.cfg.UserMemoryMB, "backend", inv.d.Backend.Name(), "stemCells", len(inv.cells.order))
	inv.consume(ctx, cons, topic)

	inv.procs.Wait() // every creation and proxy has ended
	hardCancel()
	<-graceDone
	<-regDone
	<-cpuDone
	inv.recs.close()
	<-recsDone
	inv.pool.closeAll()
	down, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := inv.d.Session.RegisterInvoker(down, inv.info(whisk.InvokerDown)); err != nil {
		inv.log.Debug("final registration", "err", err)
	}
	inv.log.Info("invoker stopped")
	return nil
}

// pollWait bounds one poll of the creation topic, so that the consumer's
// goroutine commits the watermark of creations handled meanwhile.
const pollWait = 250 * time.Millisecond

// consume reads creation requests until ctx ends. Every creation is handled
// on its own goroutine as soon as it is polled (one slow image pull does not
// hold up the requests behind it); offsets are committed up to the last one
// below which every creation was handled (a contiguous watermark), by this
// goroutine, the consumer's only user. On the way out it waits for the
// creations in flight and commits what they finished.
func (inv *Invoker) consume(ctx context.Context, cons bus.Consumer, topic string) {
	var (
		marks     watermark
		inflight  sync.WaitGroup
		committed = int64(-1)
	)
	commit := func(ctx context.Context) {
		to, ok := marks.done()
		if !ok || to <= committed {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := cons.Commit(cctx, to); err != nil {
			inv.log.Warn("commit creations", "offset", to, "err", err)
			return
		}
		committed = to
	}
	defer func() {
		inflight.Wait()
		commit(context.WithoutCancel(ctx))
		_ = cons.Close()
	}()
	backoff := retry.New(100*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		commit(ctx)
		pctx, cancel := context.WithTimeout(ctx, pollWait)
		recs, err := cons.Poll(pctx, 64)
		timedOut := pctx.Err() != nil
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if timedOut {
				continue
			}
			inv.log.Warn("polling creations failed; resubscribing", "err", err)
			_ = cons.Close()
			if !backoff.Wait(ctx) {
				return
			}
			c, err := inv.d.Bus.Subscribe(ctx, topic, "invoker")
			if err != nil {
				inv.log.Warn("resubscribe failed", "err", err)
				cons = nopConsumer{}
				continue
			}
			cons, committed = c, -1
			continue
		}
		backoff.Reset()
		for _, r := range recs {
			if !marks.add(r.Offset) {
				continue // redelivered after a resubscription: already handled or in flight
			}
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				defer marks.finish(r.Offset)
				inv.handleCreation(ctx, r.Value)
			}()
		}
	}
}

// watermark tracks the offsets of creations in flight, in the order they
// were polled, and how far every one of them is handled.
type watermark struct {
	mu      sync.Mutex
	pending []int64 // polled and not below the watermark, ascending
	handled map[int64]bool
	last    int64 // highest offset added
	mark    int64 // every offset up to it is handled, once moved
	started bool  // an offset was added
	moved   bool  // mark was moved by finish
}

// add records a polled offset; it reports false for an offset at or below
// one already added (a redelivery).
func (w *watermark) add(off int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started && off <= w.last {
		return false
	}
	if !w.started {
		w.started = true
		w.handled = map[int64]bool{}
	}
	w.last = off
	w.pending = append(w.pending, off)
	return true
}

// finish marks off handled and moves the watermark over every handled
// offset at the front.
func (w *watermark) finish(off int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handled[off] = true
	for len(w.pending) > 0 && w.handled[w.pending[0]] {
		w.mark, w.moved = w.pending[0], true
		delete(w.handled, w.pending[0])
		w.pending = w.pending[1:]
	}
}

// done returns the offset up to which everything polled is handled; ok is
// false before anything was.
func (w *watermark) done() (off int64, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mark, w.moved
}

// nopConsumer stands in after a failed resubscription so the loop retries.
type nopConsumer struct{}

func (nopConsumer) Poll(context.Context, int) ([]bus.Record, error) {
	return nil, errors.New("not subscribed")
}
func (nopConsumer) Notify(func()) bool                  { return true }
func (nopConsumer) Commit(context.Context, int64) error { return nil }
func (nopConsumer) Close() error                        { return nil }

// handleCreation serves one creation request: it returns once the request
// was acknowledged (the container registered and its proxy running, or a
// failure sent back).
func (inv *Invoker) handleCreation(ctx context.Context, value []byte) {
	var m whisk.ContainerCreation
	if err := json.Unmarshal(value, &m); err != nil {
		inv.log.Error("dropping a malformed creation request", "err", err)
		return
	}
	log := inv.log.With("action", m.Action.FQN().String(), "rev", m.Action.Rev, "creation", m.CreationID)
	if ctx.Err() != nil {
		inv.ack(ctx, &m, "", "the invoker is shutting down", false, true)
		return
	}
	mem := m.Action.Limits.Memory
	if mem <= 0 {
		mem = defaultMemoryMB
	}
	// A stem cell of the action's kind and memory brings its own memory;
	// else the memory is reserved, idle stem cells giving way if needed.
	// A creation whose namespace is at its limit removes one of the
	// namespace's idle containers first (m.SwapNamespace).
	// A namespace that uses containers leaves the headroom (m.Headroom).
	cell := inv.takeStemCell(inv.containerSpec(m.Action.Kind, mem))
	if cell != nil && m.Headroom > 0 && !inv.reserve(0, "", m.Headroom) {
		inv.giveBack(cell)
		inv.ack(ctx, &m, "", whisk.MsgHeadroom, false, true)
		return
	}
	if cell != nil && m.SwapNamespace != "" && !inv.reserve(0, m.SwapNamespace, 0) {
		inv.giveBack(cell)
		inv.ack(ctx, &m, "", "no idle container of namespace "+m.SwapNamespace+" to give up", false, true)
		return
	}
	if cell == nil && !inv.reserve(mem, m.SwapNamespace, m.Headroom) {
		msg := "not enough memory"
		switch {
		case m.SwapNamespace != "":
			msg = "no idle container of namespace " + m.SwapNamespace + " to give up, or not enough memory"
		case m.Headroom > 0 && inv.headroomOnly(mem):
			msg = whisk.MsgHeadroom
		}
		log.Debug(msg, "needMB", mem, "freeMB", inv.FreeMemoryMB())
		inv.ack(ctx, &m, "", msg, false, true)
		return
	}
	reserved := true
	defer func() {
		switch {
		case !reserved:
		case cell != nil:
			inv.giveBack(cell)
		default:
			inv.release(mem)
		}
	}()

	act, err := inv.d.Actions.GetAction(ctx, m.Action.Namespace, m.Action.Name)
	switch {
	case whisk.IsKind(err, whisk.NotFound):
		inv.ack(ctx, &m, "", "the action was deleted", true, false)
		return
	case err != nil:
		log.Warn("loading the action failed", "err", err)
		inv.ack(ctx, &m, "", "cannot load the action: "+err.Error(), false, true)
		return
	case act.Rev != m.Action.Rev:
		// Not the developer's fault, and no reason to fail the queued
		// activations: the ack carries the action as stored, so that the
		// queue can adopt its revision and ask again.
		changed := m
		changed.Action = act.Meta()
		inv.ack(ctx, &changed, "", fmt.Sprintf("the action changed (revision %d, requested %d)", act.Rev, m.Action.Rev), false, true)
		return
	}

	spec := container.Spec{
		Name:     inv.containerName(m.Action),
		Kind:     act.Exec.Kind,
		MemoryMB: mem,
		Env:      map[string]string{"__OW_API_HOST": inv.cfg.APIHost},
		Labels: map[string]string{
			"eddy.invoker": inv.cfg.ID, "eddy.namespace": act.Namespace,
			"eddy.action": act.Name, "eddy.rev": strconv.FormatInt(act.Rev, 10),
		},
	}
	if act.Exec.Kind == whisk.KindBlackbox {
		spec.Image = act.Exec.Image
		// An image that never listens is the developer's error once the
		// action's time limit passed (OpenWhisk's /init deadline), but
		// never before minReadyTimeout: a loaded host's slow start is not
		// the image's fault.
		spec.ReadyTimeout = max(act.Limits.TimeoutDuration(), minReadyTimeout)
	} else {
		rt, ok := inv.d.Runtimes.Lookup(act.Exec.Kind)
		if !ok {
			inv.ack(ctx, &m, "", fmt.Sprintf("The specified runtime '%s' is not supported by this platform.", act.Exec.Kind), true, false)
			return
		}
		spec.Image, spec.Launcher = rt.Image, rt.Launcher
	}

	if cell != nil && (cell.key.kind != spec.Kind || cell.spec.Image != spec.Image || cell.spec.Launcher != spec.Launcher) {
		// The creation message's kind was not the stored action's: the
		// stem cell goes back and the memory is reserved the usual way.
		inv.giveBack(cell)
		cell = nil
		if !inv.reserve(mem, "", m.Headroom) {
			reserved = false
			inv.ack(ctx, &m, "", "not enough memory", false, true)
			return
		}
	}
	if cell != nil {
		log.Debug("took a stem cell", "container", cell.ctr.ID())
		reserved = false // the proxy owns the memory and the stem cell now
		inv.startProxy(ctx, newProxy(inv, m, act, cell.ctr, mem, 0).fromStemCell(cell))
		return
	}

	began := inv.now()
	ctr, err := inv.d.Backend.Create(ctx, spec)
	if err != nil {
		dev := whisk.IsKind(err, whisk.Invalid)
		msg := err.Error()
		if dev {
			msg = whisk.UserMessage(err)
		}
		log.Warn("creating a container failed", "err", err, "developer", dev)
		inv.ack(ctx, &m, "", msg, dev, !dev && ctx.Err() == nil)
		return
	}
	createMs := inv.now().Sub(began).Milliseconds()
	log.Debug("container created", "container", ctr.ID(), "ms", createMs)

	reserved = false // the proxy owns the memory now
	inv.startProxy(ctx, newProxy(inv, m, act, ctr, mem, createMs))
}

// startProxy runs p and returns once its creation was acknowledged.
func (inv *Invoker) startProxy(ctx context.Context, p *proxy) {
	inv.procs.Add(1)
	inv.stats.proxies.Add(1)
	go func() {
		defer inv.procs.Done()
		defer inv.stats.proxies.Add(-1)
		p.run(ctx)
	}()
	select {
	case <-p.ready:
	case <-p.done:
	}
}

// containerSpec is the part of a container's spec that follows from its
// kind and memory: image and launcher from the manifest (none for blackbox
// or an unknown kind).
func (inv *Invoker) containerSpec(kind string, mem int64) container.Spec {
	spec := container.Spec{Kind: kind, MemoryMB: mem}
	if kind == whisk.KindBlackbox {
		return spec
	}
	if rt, ok := inv.d.Runtimes.Lookup(kind); ok {
		spec.Image, spec.Launcher = rt.Image, rt.Launcher
	}
	return spec
}

// ack answers a creation request on its scheduler's ack topic.
func (inv *Invoker) ack(ctx context.Context, m *whisk.ContainerCreation, containerID, errMsg string, developer, retryable bool) {
	a := whisk.CreationAck{
		CreationID: m.CreationID, Action: m.Action, InvokerID: inv.cfg.ID,
		ContainerID: containerID, Error: errMsg, Developer: developer, Retryable: retryable,
	}
	b, _ := json.Marshal(a)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := inv.publish(pctx, whisk.CreationAckTopic(m.SchedulerID), b); err != nil {
		inv.log.Warn("acknowledging a creation failed", "creation", m.CreationID, "err", err)
	}
}

// publish ensures the topic once per process, then publishes.
func (inv *Invoker) publish(ctx context.Context, topic string, value []byte) error {
	inv.mu.Lock()
	known := inv.topics[topic]
	inv.mu.Unlock()
	if !known {
		if err := inv.d.Bus.EnsureTopic(ctx, topic); err != nil {
			return err
		}
		inv.mu.Lock()
		inv.topics[topic] = true
		inv.mu.Unlock()
	}
	return inv.d.Bus.Publish(ctx, topic, value)
}

// containerName is "eddy_<invoker>_<ns>_<action>_<n>", restricted to the
// characters container names may carry.
func (inv *Invoker) containerName(meta whisk.ActionMeta) string {
	inv.mu.Lock()
	inv.seq++
	n := inv.seq
	inv.mu.Unlock()
	return sanitizeName(fmt.Sprintf("eddy_%s_%s_%s_%d", inv.cfg.ID, meta.Namespace, meta.Name, n))
}

// sanitizeName keeps [a-zA-Z0-9_.-] and turns every other byte into '_'.
func sanitizeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// reserve takes mb of the budget if it is free, removing idle stem cells
// and then idle warm containers (least recently used first) when that
// makes it free, and with swapNS one idle warm container of that
// namespace first (reclaim.go). It returns once the removed containers
// are gone, so that the backend never holds more than the budget.
func (inv *Invoker) reserve(mb int64, swapNS string, headroom int64) bool {
	inv.mu.Lock()
	if headroom > 0 && inv.roomLeftLocked()-mb < headroom {
		inv.mu.Unlock()
		return false
	}
	if swapNS == "" && inv.free >= mb {
		inv.free -= mb
		inv.memoryChanged()
		inv.mu.Unlock()
		return true
	}
	r, ok := inv.planLocked(mb, swapNS)
	inv.mu.Unlock()
	if !ok {
		return false
	}
	inv.clear(r)
	return true
}

// headroomOnly reports whether mb would fit but for a creation's headroom.
func (inv *Invoker) headroomOnly(mb int64) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.roomLeftLocked() >= mb
}

// release gives mb back to the budget.
func (inv *Invoker) release(mb int64) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.free += mb
	inv.memoryChanged()
}

// memoryChanged wakes the registrar and the stem-cell pool; called with
// mu held.
func (inv *Invoker) memoryChanged() {
	select {
	case inv.memChanged <- struct{}{}:
	default:
	}
	inv.cells.poke()
}

func (inv *Invoker) info(status string) whisk.InvokerInfo {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	free := inv.free
	cellsMB, cells := inv.cells.idleLocked()
	idleMB, idle, idleActions := inv.idleLocked()
	if status == whisk.InvokerDown {
		free, cellsMB, cells, idleMB, idle, idleActions = 0, 0, nil, 0, nil, nil
	}
	return whisk.InvokerInfo{
		ID: inv.cfg.ID, Status: status, UserMemory: inv.cfg.UserMemoryMB, FreeMemory: free,
		StemCellMemory: cellsMB, StemCells: cells, IdleMemory: idleMB, Idle: idle, IdleActions: idleActions, CPUBusyPct: inv.cpuPct,
		Tags: inv.cfg.Tags, Backend: inv.d.Backend.Name(),
	}
}

// registrar rewrites the invoker's registration whenever its free memory
// changed, retrying failures, until ctx ends. It also looks every
// idleAfter: a warm container that ran nothing for that long turns idle
// with no event, and schedulers count idle containers as room.
func (inv *Invoker) registrar(ctx context.Context) {
	last := inv.cfg.UserMemoryMB
	lastCells := "null" // the stem cells and idle containers published, as JSON
	var retry <-chan time.Time
	look := time.NewTicker(idleAfter)
	defer look.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-inv.memChanged:
		case <-look.C:
		case <-retry:
		}
		retry = nil
		info := inv.info(whisk.InvokerUp)
		cells, _ := json.Marshal([]any{info.StemCells, info.IdleMemory, info.IdleActions, info.CPUBusyPct})
		if info.FreeMemory == last && string(cells) == lastCells {
			continue
		}
		if err := inv.d.Session.RegisterInvoker(ctx, info); err != nil {
			if ctx.Err() != nil {
				return
			}
			inv.log.Warn("updating the registration failed", "err", err)
			retry = time.After(time.Second)
			continue
		}
		last, lastCells = info.FreeMemory, string(cells)
	}
}
