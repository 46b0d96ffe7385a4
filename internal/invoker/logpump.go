package invoker

import (
	"strings"
	"sync"

	"github.com/eddy-faas/eddy/internal/container"
)

// logPump owns a container's log stream for its proxy, so that the stream
// is read all the time, not only while a call runs: a container whose
// background thread writes between activations would otherwise fill the
// stream and block.
//
// While a collection runs (collecting), the pump hands every line, in
// order, to the collector through out, with backpressure as if the
// collector read the stream itself. In between it reads on and drops every
// line (output between activations belongs to none of them) except the
// sentinels, which it holds and hands to the next collection first. The
// sentinels are all container.LogCursor counts when it skips the lines owed
// to an unfinished collection, so the cursor stays exact: an owed line
// dropped here is one it would have skipped.
type logPump struct {
	in   <-chan container.LogLine
	out  chan container.LogLine // closed once in is closed and everything held was handed out
	wake chan struct{}          // capacity 1: collecting changed
	quit chan struct{}
	done chan struct{}

	mu         sync.Mutex
	collecting bool
}

func startLogPump(in <-chan container.LogLine) *logPump {
	lp := &logPump{
		in:   in,
		out:  make(chan container.LogLine),
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go lp.run()
	return lp
}

// setCollecting starts (true) or ends (false) handing lines to out.
func (lp *logPump) setCollecting(on bool) {
	lp.mu.Lock()
	lp.collecting = on
	lp.mu.Unlock()
	select {
	case lp.wake <- struct{}{}:
	default:
	}
}

// stop ends the pump and waits for it.
func (lp *logPump) stop() {
	close(lp.quit)
	<-lp.done
}

func (lp *logPump) run() {
	defer close(lp.done)
	in := lp.in
	var held []container.LogLine // to hand out next, oldest first
	outClosed := false
	for {
		lp.mu.Lock()
		collecting := lp.collecting
		lp.mu.Unlock()
		if !collecting {
			held = sentinelsOnly(held) // a line the collection did not take
		}
		if in == nil && len(held) == 0 && !outClosed {
			close(lp.out)
			outClosed = true
		}
		var (
			src  = in
			out  chan container.LogLine
			next container.LogLine
		)
		if collecting && len(held) > 0 {
			src, out, next = nil, lp.out, held[0] // hand out what is held first
		}
		select {
		case out <- next:
			held = held[1:]
		case l, ok := <-src:
			if ok && !collecting {
				// A collection may have begun while we waited: its call,
				// and so this line, came after setCollecting(true).
				lp.mu.Lock()
				collecting = lp.collecting
				lp.mu.Unlock()
			}
			switch {
			case !ok:
				in = nil
			case collecting || isSentinel(l):
				held = append(held, l)
			}
		case <-lp.wake:
		case <-lp.quit:
			return
		}
	}
}

func isSentinel(l container.LogLine) bool {
	return strings.TrimRight(l.Text, " \t\r") == container.Sentinel
}

func sentinelsOnly(ls []container.LogLine) []container.LogLine {
	kept := ls[:0]
	for _, l := range ls {
		if isSentinel(l) {
			kept = append(kept, l)
		}
	}
	return kept
}
