package invoker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Proxy timings that are not configuration.
const (
	fetchTimeout      = 30 * time.Second // a fetch parks ~1 s; longer means the scheduler hangs
	exitWait          = time.Second      // how long a failed call waits to see the container exit
	cleanupTimeout    = 5 * time.Second  // deregister, last fetch, remove
	completionTimeout = 10 * time.Second
	minBackoff        = 50 * time.Millisecond
	maxBackoff        = time.Second
)

// msgActionExited is the actionloop proxy's answer when the action's
// process died during /run; it means the container's action exited.
const msgActionExited = "command exited"

// proxy owns one container: it registers it, pulls activations for it and
// runs them, and removes it. One goroutine (run) does all of it.
type proxy struct {
	inv      *Invoker
	log      *slog.Logger
	creation whisk.ContainerCreation
	action   whisk.Action // with code, at the creation's revision
	ctr      container.Container
	rt       *container.Client
	info     whisk.ContainerInfo
	memMB    int64
	createMs int64 // how long creating the container took

	start string // how the container came to be: whisk.StartCold or StartPrewarm

	sentinelled  bool // the runtime writes log sentinels after each /run (not a plain blackbox image)
	sawSentinels bool // a blackbox image wrote both sentinels after a run: wait for them from now on
	settled      bool // a collection of a blackbox image ended (see logSettleFirst)

	addr   string  // scheduler address in use ("" when none)
	client Fetcher // for addr

	warm         bool                // /init succeeded
	inline       bool                // the runtime confirmed inline logs (inlinelogs.go)
	logsPending  sync.WaitGroup      // early-completed activations whose logs are being read
	logs         *logPump            // reads the container's log stream all the time (run starts it)
	logCursor    container.LogCursor // where the previous call's logs ended (one collector at a time)
	lastDuration int64
	lastActive   time.Time
	failingSince time.Time // first failed fetch of the current streak; zero when fetches work
	seqs         fetchSeqs // numbers every slot's fetches (fetchseq.go)
	staleLogged  int       // stale-leader refusals logged (main slot's)
	backoff      retry.Backoff

	rc       reclaimState    // the pool's view (reclaim.go), guarded by inv.mu
	fetchCtx context.Context // fetches end with it: cancelled once the proxy has stopped

	ready chan struct{} // closed once the creation was acknowledged (either way)
	done  chan struct{} // closed when run returns

	// Intra-container concurrency (concurrent.go). mu guards addr and
	// client writes (the main slot reads them without it), lastActive,
	// busy, extra and slotsStopped.
	mu           sync.Mutex
	demux        *container.Demux // set once the runtime confirmed concurrent mode
	slotCtx      context.Context  // extra slots end with it
	slotCancel   context.CancelFunc
	slots        sync.WaitGroup
	extra        int  // extra slots running
	slotsStopped bool // no more extra slots
	busy         int  // activations the extra slots are running
	destroyed    atomic.Bool
	initDone     chan struct{} // closed when the first /init ended (concurrency > 1)
	initErr      string        // its error, when it failed; set before initDone closes
	runMu        sync.Mutex    // one run at a time while concurrent mode is not confirmed
	slotsOK      bool          // the main slot started /init: extra slots may fetch (main's own)
}

func newProxy(inv *Invoker, m whisk.ContainerCreation, act whisk.Action, ctr container.Container, memMB, createMs int64) *proxy {
	now := inv.now()
	fetchCtx, cancel := context.WithCancel(context.Background())
	return &proxy{
		rc:       reclaimState{cancel: cancel},
		fetchCtx: fetchCtx,
		inv:      inv,
		log:      inv.log.With("action", act.FQN().String(), "rev", act.Rev, "container", ctr.ID()),
		creation: m,
		action:   act,
		ctr:      ctr,
		rt:       container.NewClient(ctr.Addr()),
		info: whisk.ContainerInfo{
			Namespace: act.Namespace, Action: act.Name, Rev: act.Rev, InvokerID: inv.cfg.ID,
			ContainerID: ctr.ID(), Addr: ctr.Addr(), MemoryMB: memMB, Started: now.UnixMilli(),
		},
		memMB:       memMB,
		createMs:    createMs,
		start:       whisk.StartCold,
		sentinelled: sentinelled(act, inv.d.Runtimes),
		lastActive:  now,
		backoff:     retry.Backoff{Min: minBackoff, Max: maxBackoff},
		ready:       make(chan struct{}),
		done:        make(chan struct{}),
		initDone:    make(chan struct{}),
	}
}

// Why a proxy stopped.
const (
	stopIdle      = "idle"
	stopShutdown  = "shutdown"
	stopObsolete  = "obsolete revision"
	stopNoLeader  = "no leader queue"
	stopDestroyed = "destroyed"
	stopReleased  = "released to the namespace" // rpc.FetchRelease: another action needs the slot
	stopReclaimed = "reclaimed"                 // the invoker needs its memory (reclaim.go)
)

// run is the proxy's life: register, acknowledge, serve, clean up.
func (p *proxy) run(ctx context.Context) {
	defer close(p.done)
	if p.logs == nil { // a stem cell brings its pump
		p.logs = startLogPump(p.ctr.Logs())
	}
	defer p.logs.stop()
	if err := p.inv.d.Session.RegisterContainer(ctx, p.info); err != nil {
		p.log.Warn("registering the container failed", "err", err)
		// The session remembers a key whose write failed and would write
		// it again after a lease re-grant: forget it, the container goes.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		if derr := p.inv.d.Session.DeregisterContainer(dctx, p.info); derr != nil {
			p.log.Warn("deregistering the unregistered container failed", "err", derr)
		}
		cancel()
		p.inv.ack(ctx, &p.creation, "", "cannot register the container: "+err.Error(), false, true)
		close(p.ready)
		p.remove(ctx)
		return
	}
	p.inv.ack(ctx, &p.creation, p.ctr.ID(), "", false, false)
	close(p.ready)

	reason := stopNoLeader
	if p.connect(p.creation.SchedulerAddr) {
		p.inv.enlist(p)
		reason = p.serve(ctx)
	}
	p.inv.delist(p)
	p.rc.cancel()
	p.log.Debug("container proxy stopping", "reason", reason)
	p.awaitLogs()
	p.stop(ctx, reason != stopNoLeader)
}

// serve fetches and runs activations until the container should go.
func (p *proxy) serve(ctx context.Context) string {
	if p.concurrency() > 1 {
		p.slotCtx, p.slotCancel = context.WithCancel(ctx)
		defer p.stopSlots()
	}
	for {
		if ctx.Err() != nil {
			return stopShutdown
		}
		if p.destroyed.Load() {
			return stopDestroyed
		}
		if p.evicted() {
			return stopReclaimed
		}
		if p.idle() {
			return stopIdle
		}
		resp, err := p.fetch(ctx, true)
		if ctx.Err() != nil {
			if err == nil && resp.Status == rpc.FetchOK && resp.Activation != nil {
				// Handed out as we were told to stop: run it within the grace.
				p.runActivation(resp.Activation)
			}
			return stopShutdown
		}
		if err != nil {
			if p.evicted() {
				return stopReclaimed
			}
			p.log.Debug("fetch failed", "addr", p.addr, "err", err)
			if !p.findLeader(ctx) {
				return stopNoLeader
			}
			continue
		}
		switch resp.Status {
		case rpc.FetchOK:
			p.fetchWorked()
			p.ensureSlots()
			if resp.Activation == nil {
				continue
			}
			p.inv.activity(p, 1)
			destroy := p.runMain(resp.Activation)
			p.inv.activity(p, -1)
			p.mu.Lock()
			p.lastActive = p.inv.now()
			p.mu.Unlock()
			if destroy {
				return stopDestroyed
			}
		case rpc.FetchEmpty:
			p.fetchWorked()
			p.ensureSlots()
			p.inv.markIdle(p)
		case rpc.FetchMismatch:
			return stopObsolete
		case rpc.FetchRelease:
			return stopReleased
		default: // FetchNoQueue, FetchUnavailable, anything unknown
			if !p.findLeader(ctx) {
				return stopNoLeader
			}
		}
	}
}

// fetch asks the current scheduler for the next activation. The call is
// not cancelled when ctx ends: a scheduler may hand out an activation as
// the invoker is told to stop, and a cancelled call would drop it unseen
// (no record, no completion). The park time (~1 s) bounds the wait; serve
// runs what comes back within the shutdown grace, or fails it with a
// record. A reclaimed container's fetch is not cancelled either (clear in
// reclaim.go): it runs what it got, then stops.
func (p *proxy) fetch(_ context.Context, alive bool) (*rpc.FetchResponse, error) {
	fctx, cancel := context.WithTimeout(p.fetchCtx, fetchTimeout)
	defer cancel()
	return p.fetchWith(fctx, alive)
}

func (p *proxy) fetchWorked() {
	p.failingSince = time.Time{}
	p.backoff.Reset()
}

// findLeader waits a little, re-reads the action's leader and connects to
// it. It reports false once fetches have failed for LeaderRetry without a
// leader to turn to, or ctx ended.
func (p *proxy) findLeader(ctx context.Context) bool {
	now := p.inv.now()
	if p.failingSince.IsZero() {
		p.failingSince = now
	}
	for {
		left := p.inv.cfg.LeaderRetry - p.inv.now().Sub(p.failingSince)
		if left <= 0 {
			return false
		}
		if !retry.Sleep(ctx, min(p.backoff.Next(), left)) {
			return false
		}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		leader, ok, err := p.inv.d.Leaders.Leader(lctx, p.action.FQN())
		cancel()
		switch {
		case err != nil:
			p.log.Debug("reading the leader failed", "err", err)
		case ok && leader.Addr != "":
			if p.connect(leader.Addr) {
				return true
			}
		}
		if ctx.Err() != nil {
			return false
		}
	}
}

// connect switches the proxy to the scheduler at addr.
func (p *proxy) connect(addr string) bool {
	if addr == p.addr && p.client != nil {
		return true
	}
	if addr == "" {
		return false
	}
	c, err := p.inv.pool.acquire(addr)
	if err != nil {
		p.log.Warn("connecting to the scheduler failed", "addr", addr, "err", err)
		return false
	}
	p.disconnect()
	p.mu.Lock()
	p.addr, p.client = addr, c
	p.mu.Unlock()
	return true
}

func (p *proxy) disconnect() {
	if p.client != nil {
		p.inv.pool.release(p.addr)
		p.mu.Lock()
		p.addr, p.client = "", nil
		p.mu.Unlock()
	}
}

// stop takes the container out of service: tell the queue it is gone,
// remove it, release its memory, deregister it.
func (p *proxy) stop(ctx context.Context, tellQueue bool) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if p.client != nil && tellQueue {
		fctx, fcancel := context.WithTimeout(cctx, 2*time.Second)
		resp, err := p.fetchWith(fctx, false)
		fcancel()
		if err == nil && resp.Status == rpc.FetchOK && resp.Activation != nil {
			// The queue should not hand work to a leaving container; if it
			// does, the activation is failed rather than lost.
			p.failActivation(resp.Activation, whisk.StatusWhiskError, whisk.MsgStubNotRunning)
		}
	}
	p.disconnect()
	p.remove(ctx)
	// Deregistered once removed: the container counts against the
	// namespace's and the action's limits (etcd) until it is gone, so a
	// replacement never runs beside it.
	if err := p.inv.d.Session.DeregisterContainer(cctx, p.info); err != nil {
		p.log.Warn("deregistering the container failed", "err", err)
	}
}

func (p *proxy) fetchWith(ctx context.Context, alive bool) (*rpc.FetchResponse, error) {
	resp, err := p.seqs.fetch(ctx, p.client, &rpc.FetchRequest{
		Namespace: p.action.Namespace, Action: p.action.Name, Rev: p.action.Rev,
		ContainerID: p.ctr.ID(), InvokerID: p.inv.cfg.ID,
		LastDurationMs: p.lastDuration, Alive: alive, Warm: p.warm,
	})
	if n := p.seqs.staleRefused(); n > p.staleLogged {
		p.staleLogged = n
		p.log.Warn("refused an activation handed out under an older leadership (a stale leader's); re-reading the leader",
			"scheduler", p.addr, "refused", n)
	}
	return resp, err
}

// sentinelled reports whether act's runtime writes log sentinels after
// each /run: every kind of the manifest does, and so does the blackbox
// default image (OpenWhisk's dockerskeleton, "native" actions); other
// blackbox images may not (OpenWhisk's sentinelledLogs).
func sentinelled(act whisk.Action, rts Runtimes) bool {
	if act.Exec.Kind != whisk.KindBlackbox {
		return true
	}
	repo, tag, _ := strings.Cut(act.Exec.Image, ":")
	return repo == rts.DefaultImage() && (tag == "" || tag == "latest")
}

// remove removes the container and releases its memory.
func (p *proxy) remove(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	p.rt.Close()
	if err := p.ctr.Remove(rctx); err != nil {
		p.log.Warn("removing the container failed", "err", err)
	}
	if !p.evicted() { // a reclaimed container's memory goes to the creation that took it
		p.inv.release(p.memMB)
	}
}

// runActivation runs one activation: /init on a cold container, /run, the
// logs, then the completion and the record. It reports whether the
// container must be destroyed. The main slot's only.
func (p *proxy) runActivation(msg *whisk.ActivationMessage) (destroy bool) {
	destroy, runMs := p.runActivationMs(msg)
	if runMs >= 0 {
		p.lastDuration = runMs
	}
	return destroy
}

// runActivationMs is runActivation for any slot; it also returns how long
// /run took, or -1 when it did not run.
func (p *proxy) runActivationMs(msg *whisk.ActivationMessage) (destroy bool, ranMs int64) {
	p.inv.stats.busy.Add(1)
	defer p.inv.stats.busy.Add(-1)
	hard := p.inv.hard
	limits := msg.Action.Limits
	if limits.Timeout <= 0 {
		limits = p.action.Limits
	}
	timeout := limits.TimeoutDuration()
	logLimit := limits.LogBytes()

	begin := p.inv.now()
	deadline := begin.Add(timeout)
	cold := !p.warm
	var (
		out      outcome
		logs     []string
		logsDone = true
		initMs   int64
		runMs    int64
		ran      bool
		end      time.Time // when the last call returned (log collection is not counted)
	)
	// Logs are read while a call runs (a chatty action would otherwise
	// block on a full pipe) and, after it, once per activation: after its
	// /run (on a cold start the collection begun before /init goes on
	// through /run, so that init's output is the first activation's, as in
	// OpenWhisk: a successful /init writes no sentinels), or after a failed
	// /init.
	var lc logWaiter
	collect := func() {
		var l []string
		var complete bool
		switch {
		case p.sentinelled || p.sawSentinels:
			l, complete = lc.waitLogs(p.inv.cfg.LogWait)
		default:
			settle := logSettle
			if !p.settled {
				settle = logSettleFirst
			}
			l, complete = lc.settleLogs(p.inv.cfg.LogWait, settle)
			p.settled, p.sawSentinels = true, complete
			complete = true // no sentinels are expected: nothing is missing
		}
		logs = append(logs, l...)
		logsDone = logsDone && complete
	}
	drain := func() { // the container is killed: its stream ends
		l, _ := lc.waitLogs(p.inv.cfg.LogWait)
		logs = append(logs, l...)
	}
	createMs := p.createMs // only the first activation's record counts the creation
	if cold {
		p.createMs = 0
	}
	record := func() whisk.Activation {
		t := whisk.Timings{Queued: queuedMs(msg.Published, begin.UnixMilli()), Run: runMs, Start: whisk.StartWarm}
		if cold {
			t.Start, t.Create, t.Init = p.start, createMs, initMs
		}
		return buildRecord(recordInput{
			msg: msg, start: begin.UnixMilli(), end: end.UnixMilli(),
			out: out, logs: logs, logsDone: logsDone, timings: t,
		})
	}
	// A caller that takes only the result gets its completion before the
	// logs are read from the container's stream (the record has them), as
	// OpenWhisk's invoker sends the result before it collects logs: an
	// image that writes sentinels makes every run wait for them to come
	// through the stream.

	if cold {
		p.initStarted()
		lc = p.startLogs(hard, logLimit)
		ictx, cancel := context.WithDeadline(hard, deadline)
		resp, err := p.rt.Init(ictx, p.initRequest(msg, deadline))
		expired := errors.Is(ictx.Err(), context.DeadlineExceeded)
		cancel()
		end = p.inv.now()
		initMs = max(end.Sub(begin).Milliseconds(), 1)
		if err == nil && resp.Status == 200 {
			p.warm = true
			if p.concurrency() > 1 && confirmsConcurrency(resp.Body, p.concurrency()) {
				// Eddy's runtime entering concurrent mode ends /init's
				// plain lines with sentinels; tagged lines follow.
				collect()
				lc = nil
			} else if container.ConfirmsInlineLogs(resp.Body) {
				p.inline = true
				if c, ok := lc.(*logCollector); ok {
					// The runtime writes no sentinels from now on.
					l, _ := c.endNoDebt()
					logs = append(logs, l...)
				}
				lc = nil
			}
			p.afterInit(resp.Body)
			p.initEnded("")
		} else {
			out = p.callFailed(err, expired, resp, true, timeout)
			p.finish(out, err == nil, collect, drain)
			p.initEnded(errorText(out.result))
		}
	}
	runBegin := p.inv.now()
	if p.warm && out.result == nil {
		if lc == nil {
			lc = p.startRunLogs(hard, msg, logLimit)
		}
		rctx, cancel := context.WithDeadline(hard, deadline)
		resp, err := p.rt.Run(rctx, p.runRequest(msg, deadline))
		expired := errors.Is(rctx.Err(), context.DeadlineExceeded)
		cancel()
		end = p.inv.now()
		if iw, ok := lc.(*inlineWaiter); ok {
			p.takeInline(iw, resp, err)
		}
		ran = true
		runMs = end.Sub(runBegin).Milliseconds()
		if err == nil && resp.Status == 200 {
			out = runOutcome(resp.Status, resp.Body, p.inv.cfg.MaxResult)
		} else {
			out = p.callFailed(err, expired, resp, false, timeout)
			p.inv.stats.runFailed(out, err, hard.Err() != nil)
		}
		if _, stream := lc.(*logCollector); stream && msg.ResultOnly && msg.Blocking && !out.destroy && (p.sentinelled || p.sawSentinels) {
			// The logs and the record follow on a goroutine of their own,
			// so that neither the next fetch nor the next run waits for
			// them: the next run's collection starts behind this one and
			// takes the lines after this run's sentinels (logPump.active).
			// The proxy's stop waits for them (awaitLogs).
			early := record()
			p.inv.traced(msg, &early, begin, initMs, runBegin, runMs, ran, end)
			p.publishCompletion(msg, early)
			p.logsPending.Add(1)
			go func() {
				defer p.logsPending.Done()
				collect()
				rec := record()
				// The spans went out with the early record; the stored
				// one carries the same trace id annotation.
				markTrace(msg, &rec)
				p.inv.recs.put(rec)
			}()
			return false, runMs
		}
		p.finish(out, err == nil, collect, drain)
	}
	ranMs = -1
	if ran {
		ranMs = runMs
	}

	rec := record()
	p.inv.traced(msg, &rec, begin, initMs, runBegin, runMs, ran, end)
	p.complete(msg, rec)
	return out.destroy, ranMs
}

// awaitLogs waits until the logs of early-completed activations are in
// their records.
func (p *proxy) awaitLogs() { p.logsPending.Wait() }

// callFailed maps a failed /init or /run to an outcome: a transport error
// (the invoker shutting down, the time limit, a dead container), or an
// answer other than 200 (for /run only a non-200 status comes here).
func (p *proxy) callFailed(err error, expired bool, resp container.Response, init bool, timeout time.Duration) outcome {
	status, body := resp.Status, resp.Body
	switch {
	case err != nil && p.inv.hard.Err() != nil:
		return failure(whisk.StatusWhiskError, whisk.MsgInvokerLost, true)
	case err != nil && (expired || errors.Is(err, context.DeadlineExceeded)):
		o := failure(whisk.StatusDeveloperError, whisk.MsgTimeLimit(timeout.Milliseconds(), init), true)
		o.timedOut = true
		return o
	case err != nil:
		// The connection broke: the container died or is unusable.
		return failure(whisk.StatusDeveloperError, p.exitMessage(init, exitWait), true)
	}
	var out outcome
	if init {
		out = initOutcome(body)
	} else {
		out = runOutcome(status, body, p.inv.cfg.MaxResult)
	}
	if errorText(out.result) == msgActionExited || p.exited(0) {
		msg := p.exitMessage(init, 0)
		if reportsOOM(body) {
			msg = whisk.MsgOOM
		}
		out = failure(whisk.StatusDeveloperError, msg, true)
	}
	return out
}

// reportsOOM reports whether a runtime's error answer says the action
// process was killed for memory: Eddy's runtime server adds "oom": true
// when its container's cgroup counted an OOM kill (the container itself
// lives on, so the backend's exit status cannot tell).
func reportsOOM(body []byte) bool {
	var b struct {
		OOM bool `json:"oom"`
	}
	return json.Unmarshal(body, &b) == nil && b.OOM
}

// exitMessage is the error of an activation whose container (or action
// process) died: out of memory, or exited during /init or /run. It waits
// up to wait for the container to end so that an OOM kill is seen.
func (p *proxy) exitMessage(init bool, wait time.Duration) string {
	if p.exited(wait) && p.ctr.Exit().OOMKilled {
		return whisk.MsgOOM
	}
	// The action's process may have died inside a container that lives
	// on (an actionloop proxy's child): its cgroup may have an OOM kill.
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	oom := p.ctr.OOMKilled(ctx)
	cancel()
	if oom {
		return whisk.MsgOOM
	}
	if init {
		return whisk.MsgInitExited
	}
	return whisk.MsgRunExited
}

// exited reports whether the container has exited, waiting up to wait.
func (p *proxy) exited(wait time.Duration) bool {
	select {
	case <-p.ctr.Done():
		return true
	default:
	}
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-p.ctr.Done():
		return true
	case <-t.C:
		return false
	}
}

// logWaiter is one activation's log collection: waitLogs waits up to d
// for its sentinels and returns its lines and whether both sentinels came;
// settleLogs does the same for a runtime that may write none.
type logWaiter interface {
	waitLogs(d time.Duration) ([]string, bool)
	settleLogs(d, settle time.Duration) ([]string, bool)
}

// startLogs starts collecting the container's logs up to the sentinels
// (the pump feeds the collection; see logPump).
func (p *proxy) startLogs(ctx context.Context, limit int64) *logCollector {
	return p.logs.startCollection(ctx, &p.logCursor, limit)
}

// finish collects the logs of a call and kills the container if it must
// go. A container that goes (a developer error: time limit, crash, failed
// /init) is killed first, its log stream kept (Container.Kill), and its
// logs are every line it wrote up to then, without waiting for sentinels
// it may never write (OpenWhisk reads such a container's log to its end).
// When the kill fails, a runtime that answered is read first (it wrote its
// sentinels before answering), one that did not is removed first, which
// ends its stream.
func (p *proxy) finish(out outcome, answered bool, collect, drain func()) {
	if !out.destroy {
		collect()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	err := p.ctr.Kill(ctx)
	cancel()
	if err == nil {
		drain()
		p.kill()
		return
	}
	p.log.Warn("killing a failed container", "err", err)
	if answered {
		collect()
		p.kill()
		return
	}
	p.kill()
	collect()
}

// kill removes a container that must not run on (timed out, crashed,
// broken) at once, so its log stream ends and it stops using resources.
// The proxy's stop removes it again (Remove is idempotent) after
// deregistering.
func (p *proxy) kill() {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := p.ctr.Remove(ctx); err != nil {
		p.log.Warn("removing a failed container", "err", err)
	}
}

// failActivation completes an activation that never ran.
func (p *proxy) failActivation(msg *whisk.ActivationMessage, code int, text string) {
	now := p.inv.now().UnixMilli()
	rec := buildRecord(recordInput{
		msg: msg, start: now, end: now, out: failure(code, text, false), logsDone: true, notRun: true,
		timings: whisk.Timings{Queued: queuedMs(msg.Published, now), Start: whisk.StartWarm},
	})
	p.complete(msg, rec)
}

// complete publishes the completion to the waiting controller first, then
// hands the record to the writer.
func (p *proxy) complete(msg *whisk.ActivationMessage, rec whisk.Activation) {
	p.publishCompletion(msg, rec)
	p.inv.recs.put(rec)
}

// publishCompletion publishes the completion to the waiting controller.
func (p *proxy) publishCompletion(msg *whisk.ActivationMessage, rec whisk.Activation) {
	comp := whisk.Completion{Activation: rec, InvokerID: p.inv.cfg.ID}
	b, err := comp.AppendJSON(make([]byte, 0, 1024))
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		err = p.inv.publish(ctx, whisk.CompletionTopic(msg.ControllerID), b)
		cancel()
	}
	if err != nil {
		p.log.Warn("publishing a completion failed", "activation", rec.ActivationID, "err", err)
	}
}

// initRequest is the runtime's POST /init request: the code and the
// first activation's context plus the init parameters as env.
func (p *proxy) initRequest(msg *whisk.ActivationMessage, deadline time.Time) container.InitRequest {
	env := make(map[string]string, len(msg.InitParams)+7)
	for k, v := range msg.InitParams {
		env[k] = v
	}
	run := p.runRequest(msg, deadline)
	env["__OW_NAMESPACE"] = run.Namespace
	env["__OW_ACTION_NAME"] = run.ActionName
	env["__OW_ACTION_VERSION"] = run.ActionVersion
	env["__OW_ACTIVATION_ID"] = run.ActivationID
	env["__OW_TRANSACTION_ID"] = run.TransactionID
	env["__OW_DEADLINE"] = run.Deadline
	if msg.APIKey != "" {
		env["__OW_API_KEY"] = msg.APIKey
	}
	main := p.action.Exec.Main
	if main == "" {
		main = "main"
	}
	req := container.InitRequest{
		Name: p.action.Name, Main: main, Binary: p.action.Exec.Binary, Code: p.action.Exec.Code, Env: env,
	}
	if n := p.concurrency(); n > 1 {
		req.Concurrency = n
	} else {
		req.Logs, req.LogLimit = container.InlineLogs, p.action.Limits.LogBytes()
	}
	return req
}

// runRequest is the runtime's POST /run request.
func (p *proxy) runRequest(msg *whisk.ActivationMessage, deadline time.Time) container.RunRequest {
	return container.RunRequest{
		Value:         msg.Params,
		Namespace:     msg.RecordNamespace(),
		ActionName:    msg.Action.FQN().Path(),
		ActionVersion: msg.Action.Version,
		ActivationID:  string(msg.ActivationID),
		TransactionID: msg.TransactionID,
		Deadline:      strconv.FormatInt(deadline.UnixMilli(), 10),
		APIKey:        msg.APIKey,
		TraceParent:   msg.TraceParent,
	}
}

// errorText returns the "error" of a result when it is a string.
func errorText(result json.RawMessage) string {
	var r struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(result, &r)
	return r.Error
}
