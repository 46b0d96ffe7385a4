package invoker

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
)

// logPump owns a container's log stream for its proxy, so that the stream
// is read all the time, not only while a call runs: a container whose
// background thread writes between activations would otherwise fill the
// stream and block.
//
// While a collection runs (startCollection until both sentinels came or
// its waitLogs returns), the pump feeds every line, in order, to it on the
// pump's own goroutine:
// a call's collection costs no goroutine and no hand-off of its own, and
// the collection keeps no more than its log limit (the lines past it are
// dropped as they are read). In between it reads on and drops every line
// (output between activations belongs to none of them) except the
// sentinels, which it holds and feeds to the next collection first. The
// sentinels are all container.LogCursor counts when it skips the lines
// owed to an unfinished collection, so the cursor stays exact: an owed
// line dropped here is one it would have skipped.
//
// In concurrent mode (feedAll) every line goes to the demux instead.
type logPump struct {
	in   <-chan container.LogLine
	quit chan struct{}
	done chan struct{}

	mu    sync.Mutex
	held  []container.LogLine // sentinels read between collections, oldest first
	ended bool                // in is closed
	cols  []*logCollector     // the collections under way, oldest first (see active)
	sink  lineSink            // set once by feedAll: every line goes there
}

// lineSink takes every line of a stream (*container.Demux has it).
type lineSink interface {
	Feed(container.LogLine)
	Close()
}

func startLogPump(in <-chan container.LogLine) *logPump {
	lp := &logPump{
		in:   in,
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go lp.run()
	return lp
}

// stop ends the pump and waits for it.
func (lp *logPump) stop() {
	close(lp.quit)
	<-lp.done
}

func (lp *logPump) run() {
	defer close(lp.done)
	in := lp.in
	for {
		select {
		case l, ok := <-in:
			lp.mu.Lock()
			if ok {
				lp.takeLocked(l)
			} else {
				in = nil
				lp.endLocked()
			}
			lp.mu.Unlock()
		case <-lp.quit:
			lp.mu.Lock()
			lp.endLocked()
			lp.mu.Unlock()
			return
		}
	}
}

// takeLocked gives l to whoever takes it now (under mu).
func (lp *logPump) takeLocked(l container.LogLine) {
	if lp.sink != nil {
		lp.sink.Feed(l)
	} else if c := lp.active(); c != nil {
		c.feed(l)
	} else if isSentinel(l) {
		lp.held = append(lp.held, l)
	}
}

// endLocked says that no more lines come (under mu): the collection under
// way ends incomplete (unless it is complete), later ones at once.
func (lp *logPump) endLocked() {
	if lp.ended {
		return
	}
	lp.ended = true
	if lp.sink != nil {
		lp.sink.Close()
	}
	for _, c := range lp.cols {
		c.finish()
	}
}

// active is the collection the stream's lines go to (under mu): the
// oldest that has not seen both of its sentinels. A collection started
// while an older one still waits for its sentinels (an early completion's,
// read off the fetch path) gets the lines after them: they are its run's.
func (lp *logPump) active() *logCollector {
	for _, c := range lp.cols {
		if !c.finished {
			return c
		}
	}
	return nil
}

// feedAll sends every line, from now on and for good, to s (the held
// sentinels first); s is closed when the stream ends or the pump stops.
func (lp *logPump) feedAll(s lineSink) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	lp.sink = s
	for _, l := range lp.held {
		s.Feed(l)
	}
	lp.held = nil
	if lp.ended {
		s.Close()
	}
}

// logCollector is one call's log collection, fed by the pump.
type logCollector struct {
	pump     *logPump
	cur      *container.LogCursor
	ctx      context.Context // its end ends the wait
	col      container.LogCollection
	done     chan struct{} // closed when both sentinels came or the stream ended
	finished bool          // done is closed (under pump.mu)
	fed      int           // lines fed so far (under pump.mu): settle sees the stream go quiet
}

// How long a collection of a runtime that may write no sentinels (blackbox
// images) waits for the stream to go quiet: OpenWhisk reads such a
// container's log file up to its end, which is what the container wrote
// before it answered; the stream delivers those lines within a few
// milliseconds of the answer, more on a loaded machine. A container's
// first collection waits longer (logSettleFirst): a container seen writing
// both sentinels is waited for as a sentinelled runtime from then on (the
// proxy's sawSentinels), one that wrote none gets logSettle.
const (
	logSettle      = 25 * time.Millisecond
	logSettleFirst = 250 * time.Millisecond
)

// startCollection starts collecting the logs of the cursor's next
// activation, up to limit bytes: the held sentinels first, then every line
// the pump reads until waitLogs. Lines the container wrote before it are
// not this call's: the pump dropped them.
func (lp *logPump) startCollection(ctx context.Context, cur *container.LogCursor, limit int64) *logCollector {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	lc := &logCollector{pump: lp, ctx: ctx, cur: cur, col: cur.Start(limit), done: make(chan struct{})}
	lp.cols = append(lp.cols, lc)
	// While an older collection still waits, the held sentinels (none,
	// then) are not this one's.
	if lp.active() == lc {
		held := lp.held
		lp.held = lp.held[:0]
		for i, l := range held {
			if lc.finished {
				// Both sentinels came: the rest is for the next collection.
				lp.held = append(lp.held, held[i:]...)
				break
			}
			lc.feed(l)
		}
	}
	if lp.ended {
		lc.finish()
	}
	return lc
}

// feed takes one line (under pump.mu).
func (lc *logCollector) feed(l container.LogLine) {
	lc.fed++
	lc.col.Feed(l)
	if lc.col.Done() {
		lc.finish()
	}
}

// finish closes done (under pump.mu).
func (lc *logCollector) finish() {
	if !lc.finished {
		lc.finished = true
		close(lc.done)
	}
}

// waitLogs waits up to d for the sentinels (or the end of the stream, or
// of the collection's ctx), then ends the collection: its lines and
// whether both sentinels came.
func (lc *logCollector) waitLogs(d time.Duration) ([]string, bool) {
	lc.wait(d)
	return lc.end()
}

// settleLogs is waitLogs for a runtime that may never write sentinels: it
// waits for them, or for the end of the stream, or until no line came for
// settle (at most d in all); the sentinels it did not see are not owed.
func (lc *logCollector) settleLogs(d, settle time.Duration) ([]string, bool) {
	lp := lc.pump
	limit := time.Now().Add(d)
	lp.mu.Lock()
	seen := lc.fed
	lp.mu.Unlock()
	for {
		left := time.Until(limit)
		if left <= 0 || lc.wait(min(settle, left)) {
			break
		}
		lp.mu.Lock()
		quiet := lc.fed == seen
		seen = lc.fed
		lp.mu.Unlock()
		if quiet {
			break
		}
	}
	return lc.endNoDebt()
}

// endNoDebt ends the collection at once with what it has, owing nothing:
// the sentinels it did not see are not expected any more.
func (lc *logCollector) endNoDebt() ([]string, bool) {
	lc.pump.mu.Lock()
	lc.col.NoDebt()
	lc.pump.mu.Unlock()
	return lc.end()
}

// wait waits up to d for done or the collection's ctx; it reports whether
// the collection is over (done, or ctx ended).
func (lc *logCollector) wait(d time.Duration) bool {
	select {
	case <-lc.done:
		return true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-lc.done:
		return true
	case <-t.C:
		return false
	case <-lc.ctx.Done():
		return true
	}
}

// end ends the collection: its lines and whether both sentinels came.
func (lc *logCollector) end() ([]string, bool) {
	lp := lc.pump
	lp.mu.Lock()
	defer lp.mu.Unlock()
	i := slices.Index(lp.cols, lc)
	if i >= 0 {
		lp.cols = slices.Delete(lp.cols, i, i+1)
	}
	logs, _, complete := lc.col.End()
	if !complete && i >= 0 && i < len(lp.cols) {
		// A later collection is under way: the sentinels this one did not
		// see come before its own.
		out, errs := lc.cur.TakeOwed()
		lp.cols[i].col.Owe(out, errs)
	}
	return logs, complete
}

func isSentinel(l container.LogLine) bool {
	return strings.TrimRight(l.Text, " \t\r") == container.Sentinel
}
