package invoker

// Prewarm stem cells (OpenWhisk's "prewarm containers"): the
// invoker keeps Count started but uninitialised containers of a kind and
// memory. A creation for an action of that kind and memory takes one
// instead of creating a container (its record says "start": "prewarm"),
// and the pool refills in the background.
//
// Accounting: a stem cell holds its memory from the moment its creation
// starts until it is removed, so the free memory the invoker publishes
// counts it; idle stem cells are also published (StemCellMemory), because
// they give way: a creation that finds too little free memory removes idle
// stem cells (of other kinds) until it fits. A refill never removes
// anything: it waits for free memory. Stem cells belong to no action and
// have no container key in etcd.

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// StemCell is a prewarm setting: keep Count stem cells of Kind with
// MemoryMB memory.
type StemCell struct {
	Kind     string
	MemoryMB int64
	Count    int
}

// Refill policy.
const (
	maxStemStarts     = 2                // stem cells being created at once, all kinds
	stemCreateTimeout = 60 * time.Second // one stem cell's creation (an image pull included)
	stemMinBackoff    = 250 * time.Millisecond
	stemMaxBackoff    = 30 * time.Second
	// stemRefillDelay holds off the refill after a stem cell was taken, so
	// that creating its successor does not compete for the CPU with its
	// /init, the part of the start that is still to come.
	stemRefillDelay = 500 * time.Millisecond
)

// StemCellsFromManifest lists the prewarm settings of a runtime manifest.
func StemCellsFromManifest(m *manifest.Manifest) []StemCell {
	var out []StemCell
	for _, kind := range m.Kinds() {
		rt, ok := m.Lookup(kind)
		if !ok {
			continue
		}
		for _, sc := range rt.StemCells {
			if sc.Count > 0 {
				out = append(out, StemCell{Kind: kind, MemoryMB: sc.MemoryMB, Count: sc.Count})
			}
		}
	}
	return out
}

// ParseStemCells parses the --prewarm setting: "" keeps base (the
// manifest's), "0" or "none" turns prewarming off, else a comma-separated
// list of kind:memory:count ("python:3.11:256:1,nodejs:18:256:2") replaces
// base; a kind the list names with count 0 has no stem cells. The kind is
// resolved with resolve (e.g. "python" → "python:3.11"); blackbox cannot
// be prewarmed (its image is the action's).
func ParseStemCells(s string, base []StemCell, resolve func(string) (string, error)) ([]StemCell, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return base, nil
	case "0", "none", "off":
		return nil, nil
	}
	var out []StemCell
	seen := map[cellKey]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		parts := strings.Split(item, ":")
		if len(parts) < 3 {
			return nil, fmt.Errorf("prewarm %q: want kind:memory:count", item)
		}
		n := len(parts)
		kind := strings.Join(parts[:n-2], ":")
		mem, err1 := strconv.ParseInt(strings.TrimSuffix(strings.ToUpper(parts[n-2]), "MB"), 10, 64)
		count, err2 := strconv.Atoi(parts[n-1])
		if err1 != nil || err2 != nil || mem <= 0 || count < 0 {
			return nil, fmt.Errorf("prewarm %q: memory (MB) must be a positive integer and count a non-negative one", item)
		}
		if resolve != nil {
			k, err := resolve(kind)
			if err != nil {
				return nil, fmt.Errorf("prewarm %q: %s", item, whisk.UserMessage(err))
			}
			kind = k
		}
		if kind == whisk.KindBlackbox {
			return nil, fmt.Errorf("prewarm %q: blackbox actions bring their own image and cannot be prewarmed", item)
		}
		k := cellKey{kind, mem}
		if seen[k] {
			return nil, fmt.Errorf("prewarm %q: %s with %d MB given twice", item, kind, mem)
		}
		seen[k] = true
		if count > 0 {
			out = append(out, StemCell{Kind: kind, MemoryMB: mem, Count: count})
		}
	}
	return out, nil
}

// cellKey is what a stem cell must match: kind and memory. The image and
// the launcher follow from the kind (the manifest), and are checked too.
type cellKey struct {
	kind string
	mem  int64
}

// stemCell is one idle prewarm container; its log pump goes to the proxy
// that takes it.
type stemCell struct {
	key   cellKey
	spec  container.Spec
	ctr   container.Container
	logs  *logPump
	ready time.Time
	out   chan struct{} // closed when it leaves the idle pool (ends its watcher)
}

// addIdleLocked puts c in the idle pool and watches it: a stem cell that
// exits while idle is dropped, and the pool refills. Called with mu held,
// while the prewarmer runs (it holds procs open).
func (inv *Invoker) addIdleLocked(c *stemCell) {
	p := inv.cells
	p.idle[c.key] = append(p.idle[c.key], c)
	c.out = make(chan struct{})
	out := c.out
	inv.memoryChanged()
	inv.procs.Add(1)
	go func() {
		defer inv.procs.Done()
		select {
		case <-out:
		case <-c.ctr.Done():
			inv.mu.Lock()
			found := p.removeIdleLocked(c)
			if found {
				inv.memoryChanged()
			}
			inv.mu.Unlock()
			if found {
				inv.log.Warn("a stem cell exited while idle", "kind", c.key.kind, "memoryMB", c.key.mem, "container", c.ctr.ID())
				inv.removeStemCell(c, "exited while idle")
			}
		}
	}()
}

// removeIdleLocked takes c out of the idle pool if it is there.
func (p *stemPool) removeIdleLocked(c *stemCell) bool {
	cells := p.idle[c.key]
	for i, x := range cells {
		if x == c {
			p.idle[c.key] = append(cells[:i:i], cells[i+1:]...)
			close(c.out)
			return true
		}
	}
	return false
}

// stemPool is the prewarm state; every field is guarded by the invoker's
// mu, so that stem cells and the free memory change together.
type stemPool struct {
	want     map[cellKey]int
	order    []cellKey // want's keys, sorted: refills go in this order
	idle     map[cellKey][]*stemCell
	starting map[cellKey]int
	failures map[cellKey]int
	retryAt  map[cellKey]time.Time
	nstart   int  // creations in flight, all keys
	stopped  bool // shutting down: no take, no refill
	wake     chan struct{}
}

func newStemPool(cells []StemCell) *stemPool {
	p := &stemPool{
		want: map[cellKey]int{}, idle: map[cellKey][]*stemCell{}, starting: map[cellKey]int{},
		failures: map[cellKey]int{}, retryAt: map[cellKey]time.Time{}, wake: make(chan struct{}, 1),
	}
	for _, c := range cells {
		if c.Count <= 0 || c.Kind == "" || c.Kind == whisk.KindBlackbox {
			continue
		}
		if c.MemoryMB <= 0 {
			c.MemoryMB = defaultMemoryMB
		}
		k := cellKey{c.Kind, c.MemoryMB}
		if _, dup := p.want[k]; !dup {
			p.order = append(p.order, k)
		}
		p.want[k] += c.Count
	}
	sort.Slice(p.order, func(i, j int) bool {
		a, b := p.order[i], p.order[j]
		return a.kind < b.kind || a.kind == b.kind && a.mem < b.mem
	})
	return p
}

func (p *stemPool) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// idleLocked is the memory and the counts of the idle stem cells.
func (p *stemPool) idleLocked() (mb int64, cells []whisk.StemCell) {
	for _, k := range p.order {
		if n := len(p.idle[k]); n > 0 {
			mb += int64(n) * k.mem
			cells = append(cells, whisk.StemCell{Kind: k.kind, MemoryMB: k.mem, Count: n})
		}
	}
	return mb, cells
}

// idleMBLocked is the memory of the idle stem cells.
func (p *stemPool) idleMBLocked() (mb int64) {
	for _, k := range p.order {
		mb += int64(len(p.idle[k])) * k.mem
	}
	return mb
}

// takeStemCell hands out an idle stem cell that fits spec (same kind,
// memory, image and launcher), or nil. Its memory goes with it.
func (inv *Invoker) takeStemCell(spec container.Spec) *stemCell {
	if spec.Kind == whisk.KindBlackbox {
		return nil
	}
	k := cellKey{spec.Kind, spec.MemoryMB}
	var dead []*stemCell
	defer func() {
		for _, c := range dead {
			inv.removeStemCell(c, "exited while idle")
		}
	}()
	inv.mu.Lock()
	defer inv.mu.Unlock()
	p := inv.cells
	if p.stopped {
		return nil
	}
	for len(p.idle[k]) > 0 {
		cells := p.idle[k]
		c := cells[len(cells)-1] // the youngest: the oldest go first when memory is short
		p.removeIdleLocked(c)
		if at := inv.now().Add(stemRefillDelay); at.After(p.retryAt[k]) {
			p.retryAt[k] = at
		}
		p.poke()
		inv.memoryChanged()
		select {
		case <-c.ctr.Done():
			dead = append(dead, c)
			continue
		default:
		}
		if c.spec.Image != spec.Image || c.spec.Launcher != spec.Launcher {
			dead = append(dead, c) // the manifest changed under it
			continue
		}
		return c
	}
	return nil
}

// giveBack returns a stem cell taken for a creation that did not go ahead.
func (inv *Invoker) giveBack(c *stemCell) {
	inv.mu.Lock()
	if !inv.cells.stopped {
		inv.addIdleLocked(c)
		inv.mu.Unlock()
		return
	}
	inv.mu.Unlock()
	inv.removeStemCell(c, "shutdown")
}

// evictLocked takes idle stem cells out of the pool, oldest first, until
// their memory covers need; it takes none when they cannot. Called with mu
// held; the caller removes them.
func (p *stemPool) evictLocked(need int64) ([]*stemCell, int64) {
	var all []*stemCell
	var total int64
	for _, k := range p.order {
		all = append(all, p.idle[k]...)
		total += int64(len(p.idle[k])) * k.mem
	}
	if total < need {
		return nil, 0
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ready.Before(all[j].ready) })
	var got int64
	var out []*stemCell
	for _, c := range all {
		if got >= need {
			break
		}
		out = append(out, c)
		got += c.key.mem
	}
	for _, c := range out {
		p.removeIdleLocked(c)
	}
	return out, got
}

// removeStemCell removes a stem cell's container and releases its memory.
func (inv *Invoker) removeStemCell(c *stemCell, why string) {
	inv.destroyStemCell(c, why)
	inv.release(c.key.mem)
}

// destroyStemCell removes a stem cell's container; its memory stays reserved.
func (inv *Invoker) destroyStemCell(c *stemCell, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	c.logs.stop()
	if err := c.ctr.Remove(ctx); err != nil {
		inv.log.Warn("removing a stem cell failed", "container", c.ctr.ID(), "err", err)
	}
	inv.log.Debug("stem cell removed", "kind", c.key.kind, "memoryMB", c.key.mem, "container", c.ctr.ID(), "why", why)
}

// prewarmer keeps the pool full until ctx ends, then removes every stem
// cell, waiting for the creations in flight.
func (inv *Invoker) prewarmer(ctx context.Context) {
	p := inv.cells
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		next := inv.refill(ctx)
		var tc <-chan time.Time
		if !next.IsZero() {
			if timer == nil {
				timer = time.NewTimer(time.Until(next))
			} else {
				timer.Reset(time.Until(next))
			}
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			inv.drainStemCells()
			return
		case <-p.wake:
		case <-tc:
		}
	}
}

// refill starts the creations the pool lacks, as memory and the bound on
// creations in flight allow. It returns when the earliest back-off ends
// (zero when none waits).
func (inv *Invoker) refill(ctx context.Context) time.Time {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	p := inv.cells
	var next time.Time
	now := inv.now()
	for _, k := range p.order {
		for len(p.idle[k])+p.starting[k] < p.want[k] && p.nstart < maxStemStarts && !p.stopped && ctx.Err() == nil {
			if at := p.retryAt[k]; at.After(now) {
				if next.IsZero() || at.Before(next) {
					next = at
				}
				break
			}
			if inv.free < k.mem {
				break // waits for memory; release pokes the pool
			}
			inv.free -= k.mem
			inv.memoryChanged()
			p.starting[k]++
			p.nstart++
			inv.procs.Add(1)
			go func() {
				defer inv.procs.Done()
				inv.startStemCell(ctx, k)
			}()
		}
	}
	return next
}

// startStemCell creates one stem cell of k, whose memory is reserved.
func (inv *Invoker) startStemCell(ctx context.Context, k cellKey) {
	spec := container.Spec{
		Name:     inv.stemCellName(k),
		Kind:     k.kind,
		MemoryMB: k.mem,
		Env:      map[string]string{"__OW_API_HOST": inv.cfg.APIHost},
		Labels:   map[string]string{"eddy.invoker": inv.cfg.ID, "eddy.prewarm": "true"},
	}
	rt, ok := inv.d.Runtimes.Lookup(k.kind)
	var (
		ctr container.Container
		err error
	)
	began := inv.now()
	if !ok {
		err = fmt.Errorf("kind %s is not in the runtime manifest", k.kind)
	} else {
		spec.Image, spec.Launcher = rt.Image, rt.Launcher
		cctx, cancel := context.WithTimeout(ctx, stemCreateTimeout)
		ctr, err = inv.d.Backend.Create(cctx, spec)
		cancel()
	}

	inv.mu.Lock()
	p := inv.cells
	p.starting[k]--
	p.nstart--
	p.poke() // a slot for the next creation
	if err != nil {
		p.failures[k]++
		n := p.failures[k]
		p.retryAt[k] = inv.now().Add(min(stemMinBackoff<<min(n-1, 10), stemMaxBackoff))
		inv.free += k.mem
		inv.memoryChanged()
		inv.mu.Unlock()
		if ctx.Err() == nil {
			lvl := inv.log.Warn
			if n > 1 {
				lvl = inv.log.Debug
			}
			lvl("creating a stem cell failed; retrying with back-off", "kind", k.kind, "memoryMB", k.mem, "failures", n, "err", err)
		}
		return
	}
	c := &stemCell{key: k, spec: spec, ctr: ctr, logs: startLogPump(ctr.Logs()), ready: inv.now()}
	if p.stopped || ctx.Err() != nil {
		inv.mu.Unlock()
		inv.removeStemCell(c, "shutdown")
		return
	}
	p.failures[k] = 0
	delete(p.retryAt, k)
	inv.addIdleLocked(c)
	inv.mu.Unlock()
	inv.log.Debug("stem cell ready", "kind", k.kind, "memoryMB", k.mem, "container", ctr.ID(), "ms", inv.now().Sub(began).Milliseconds())
}

// drainStemCells stops the pool and removes its stem cells; creations in
// flight remove theirs as they end.
func (inv *Invoker) drainStemCells() {
	inv.mu.Lock()
	p := inv.cells
	p.stopped = true
	var all []*stemCell
	for _, k := range p.order {
		all = append(all, p.idle[k]...)
	}
	for _, c := range all {
		p.removeIdleLocked(c)
	}
	inv.memoryChanged()
	inv.mu.Unlock()
	for _, c := range all {
		inv.removeStemCell(c, "shutdown")
	}
}

// stemCellName is "eddy_<invoker>_prewarm_<kind>_<memory>_<n>".
func (inv *Invoker) stemCellName(k cellKey) string {
	inv.mu.Lock()
	inv.seq++
	n := inv.seq
	inv.mu.Unlock()
	return sanitizeName(fmt.Sprintf("eddy_%s_prewarm_%s_%d_%d", inv.cfg.ID, k.kind, k.mem, n))
}

// StemCells counts the idle stem cells per kind and memory.
func (inv *Invoker) StemCells() []whisk.StemCell {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	_, cells := inv.cells.idleLocked()
	return cells
}

// fromStemCell makes p the proxy of a stem cell's container: its first
// activation is a prewarm start, and it reads the stem cell's log pump.
func (p *proxy) fromStemCell(c *stemCell) *proxy {
	p.start = whisk.StartPrewarm
	p.logs = c.logs
	return p
}
