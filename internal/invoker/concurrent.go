package invoker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Intra-container concurrency (limits.concurrency N > 1). The proxy's own
// goroutine (the main slot) runs serve as for N = 1: it fetches, inits the
// container with the first activation and decides when the container goes.
// Once /init succeeded and the runtime confirmed concurrent mode (its
// answer carries "concurrency": N; Eddy's runtime does, other images do
// not), the proxy switches its log stream to a container.Demux (every line
// after /init is tagged with its activation id). N-1 extra slots,
// goroutines that each fetch and run one activation at a time on the same
// container with their own connection reference to the action's current
// scheduler, start fetching as soon as the main slot got the container's
// first activation (so that a new container takes N activations off the
// queue at once, and the queue does not ask for containers for activations
// it is about to hand out); what they fetch waits for /init. If /init
// fails, they fail their activations with its error; if the runtime did
// not confirm concurrent mode, each runs the one it has, one at a time,
// and ends. An extra slot
// ends when a fetch fails or answers anything but an activation or empty
// (the main slot finds the leader and starts it again), when its container
// must be destroyed, or when the main slot stops; the main slot waits for
// every extra slot before it takes the container out of service.

// concurrency is the action's intra-container concurrency (≥ 1).
func (p *proxy) concurrency() int { return max(1, p.action.Limits.Concurrency) }

// confirmsConcurrency reports whether an /init answer confirmed concurrent
// mode with n slots.
func confirmsConcurrency(body []byte, n int) bool {
	var b struct {
		Concurrency int `json:"concurrency"`
	}
	return json.Unmarshal(body, &b) == nil && b.Concurrency == n
}

// initStarted is called by the main slot when it starts a cold activation.
func (p *proxy) initStarted() {
	if p.concurrency() <= 1 {
		return
	}
	p.slotsOK = true
	p.ensureSlots()
}

// initEnded is called by the main slot once /init was answered (or
// failed), with the error text of a failure.
func (p *proxy) initEnded(errText string) {
	if p.concurrency() <= 1 {
		return
	}
	p.initErr = errText
	close(p.initDone)
}

// afterInit switches the proxy to concurrent mode when the /init answer
// confirmed it; called by the main slot right after a successful /init
// and the collection of its logs.
func (p *proxy) afterInit(body []byte) {
	n := p.concurrency()
	if n <= 1 {
		return
	}
	if !confirmsConcurrency(body, n) {
		p.log.Warn("the runtime did not confirm intra-container concurrency: one activation at a time", "concurrency", n)
		return
	}
	d := container.NewDemux()
	p.logs.feedAll(d) // every line to the demux, from now on
	p.demux = d
}

// ensureSlots starts extra slots up to concurrency-1 (main slot only):
// from the first cold activation on (initStarted), and again after fetches
// when some ended, unless the runtime did not confirm concurrent mode.
func (p *proxy) ensureSlots() {
	if p.slotCtx == nil || !p.slotsOK || (p.warm && p.demux == nil) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.extra < p.concurrency()-1 && !p.slotsStopped {
		p.extra++
		p.slots.Add(1)
		go p.runSlot()
	}
}

// stopSlots tells the extra slots to end and waits for them (main slot).
func (p *proxy) stopSlots() {
	p.mu.Lock()
	p.slotsStopped = true
	p.mu.Unlock()
	if p.slotCancel != nil {
		p.slotCancel()
	}
	p.slots.Wait()
}

// runSlot is one extra slot: fetch and run until told to stop or a fetch
// does not give work.
func (p *proxy) runSlot() {
	defer p.slots.Done()
	defer func() {
		p.mu.Lock()
		p.extra--
		p.mu.Unlock()
	}()
	ctx := p.slotCtx
	var (
		addr   string
		client Fetcher
		last   int64
	)
	defer func() {
		if client != nil {
			p.inv.pool.release(addr)
		}
	}()
	for ctx.Err() == nil && !p.destroyed.Load() {
		p.mu.Lock()
		cur := p.addr
		p.mu.Unlock()
		if cur == "" {
			return
		}
		if cur != addr || client == nil {
			c, err := p.inv.pool.acquire(cur)
			if err != nil {
				return
			}
			if client != nil {
				p.inv.pool.release(addr)
			}
			addr, client = cur, c
		}
		fctx, cancel := context.WithTimeout(p.fetchCtx, fetchTimeout)
		resp, err := p.seqs.fetch(fctx, client, &rpc.FetchRequest{
			Namespace: p.action.Namespace, Action: p.action.Name, Rev: p.action.Rev,
			ContainerID: p.ctr.ID(), InvokerID: p.inv.cfg.ID,
			LastDurationMs: last, Alive: true, Warm: true,
		})
		cancel()
		if err != nil {
			return
		}
		switch resp.Status {
		case rpc.FetchOK:
			if resp.Activation == nil {
				continue
			}
			p.setBusy(1)
			destroy, runMs, serial := p.runExtra(resp.Activation)
			p.setBusy(-1)
			if serial {
				return
			}
			if runMs >= 0 {
				last = runMs
			}
			if destroy {
				p.destroyed.Store(true)
				return
			}
		case rpc.FetchEmpty:
		default:
			return
		}
	}
}

// runExtra runs an activation an extra slot fetched, once /init is over;
// serial reports that the runtime runs one activation at a time (the slot
// ends).
func (p *proxy) runExtra(msg *whisk.ActivationMessage) (destroy bool, runMs int64, serial bool) {
	<-p.initDone
	if !p.warm || p.destroyed.Load() {
		text := p.initErr
		if text == "" {
			text = whisk.MsgInitExited
		}
		p.failActivation(msg, whisk.StatusDeveloperError, text)
		return false, -1, true
	}
	if p.demux == nil {
		p.runMu.Lock()
		defer p.runMu.Unlock()
		destroy, runMs = p.runActivationMs(msg)
		return destroy, runMs, true
	}
	destroy, runMs = p.runActivationMs(msg)
	return destroy, runMs, false
}

// setBusy counts the activations the extra slots are running and marks
// the container active.
func (p *proxy) setBusy(delta int) {
	p.inv.activity(p, delta)
	p.mu.Lock()
	p.busy += delta
	p.lastActive = p.inv.now()
	p.mu.Unlock()
}

// idle reports whether the container has had nothing to do for the idle
// timeout (no extra slot running an activation either).
func (p *proxy) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.busy == 0 && p.inv.now().Sub(p.lastActive) >= p.inv.cfg.IdleTimeout
}

// demuxLogs is one activation's log collection in concurrent mode.
type demuxLogs struct{ c *container.Collection }

func (d demuxLogs) waitLogs(wait time.Duration) ([]string, bool) {
	logs, _, complete := d.c.Wait(wait)
	return logs, complete
}

// settleLogs is waitLogs: only Eddy's runtime, which writes sentinels,
// runs in concurrent mode.
func (d demuxLogs) settleLogs(wait, _ time.Duration) ([]string, bool) { return d.waitLogs(wait) }

// startRunLogs starts collecting the logs of msg's /run: from the demux in
// concurrent mode, else from the pump up to the next sentinels.
func (p *proxy) startRunLogs(ctx context.Context, msg *whisk.ActivationMessage, limit int64) logWaiter {
	if p.demux != nil {
		return demuxLogs{p.demux.Start(string(msg.ActivationID), limit)}
	}
	if p.inline {
		return &inlineWaiter{limit: limit}
	}
	return p.startLogs(ctx, limit)
}

// runMain is runActivation for the main slot: with concurrency > 1 it
// holds runMu, so that extra slots of a runtime that did not confirm
// concurrent mode run one at a time with it.
func (p *proxy) runMain(msg *whisk.ActivationMessage) bool {
	if p.concurrency() <= 1 {
		return p.runActivation(msg)
	}
	p.runMu.Lock()
	defer p.runMu.Unlock()
	return p.runActivation(msg)
}
