package container

import (
	"strings"
	"sync"
	"time"
)

// Concurrent mode: Eddy's runtime, when its /init asked for concurrency > 1
// and its answer confirmed it, writes every line after /init as
// TagMark + tag + " " + text, where tag is the activation id of the run the
// line belongs to (Untagged for a line no run claims), and ends each run
// with TagMark + tag + " " + Sentinel on both streams. Demux splits such a
// stream among the activations collecting at once.
const (
	TagMark  = "\x1e"
	Untagged = "-"
)

// SplitTag splits a line of a container in concurrent mode into its tag
// and text; ok is false for a line without the tag mark.
func SplitTag(text string) (tag, rest string, ok bool) {
	r, ok := strings.CutPrefix(text, TagMark)
	if !ok {
		return "", text, false
	}
	tag, rest, _ = strings.Cut(r, " ")
	return tag, rest, true
}

// Demux splits one container's tagged log stream per activation. One
// goroutine calls Feed with every line, in order per stream; any number of
// activations Start, Wait and Stop collections meanwhile. A line tagged
// with an activation goes to that activation's collection; an untagged
// line (written outside any activation's context, e.g. by a thread the
// action started) goes to every collection open at the time; lines of an
// activation nobody collects (any more) are dropped.
type Demux struct {
	mu     sync.Mutex
	colls  map[string]*Collection
	closed bool
}

// NewDemux returns a Demux with no collection.
func NewDemux() *Demux { return &Demux{colls: map[string]*Collection{}} }

// Collection is one activation's logs being collected by a Demux.
type Collection struct {
	d                *Demux
	tag              string
	lines            limitedLines
	gotOut, gotErr   bool
	complete, closed bool
	done             chan struct{} // closed when both sentinels came or the stream ended
}

// Start begins collecting the lines tagged tag, formatted and cut at
// limitBytes as CollectLogs does.
func (d *Demux) Start(tag string, limitBytes int64) *Collection {
	c := &Collection{d: d, tag: tag, lines: limitedLines{limit: limitBytes}, done: make(chan struct{})}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		c.closed = true
		close(c.done)
		return c
	}
	d.colls[tag] = c
	return c
}

// Feed hands the Demux the stream's next line.
func (d *Demux) Feed(l LogLine) {
	tag, text, ok := SplitTag(l.Text)
	if !ok {
		return // not a line of concurrent mode: no run's
	}
	l.Text = text
	d.mu.Lock()
	defer d.mu.Unlock()
	if tag == Untagged {
		for _, c := range d.colls {
			c.lines.add(l)
		}
		return
	}
	c, ok := d.colls[tag]
	if !ok {
		return
	}
	if strings.TrimRight(text, " \t\r") == Sentinel {
		switch l.Stream {
		case Stdout:
			c.gotOut = true
		case Stderr:
			c.gotErr = true
		}
		if c.gotOut && c.gotErr {
			c.complete = true
			c.finish()
		}
		return
	}
	c.lines.add(l)
}

// Close says the stream ended: open collections end incomplete.
func (d *Demux) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for _, c := range d.colls {
		c.finish()
	}
}

// finish ends the collection; called with d.mu held.
func (c *Collection) finish() {
	if c.closed {
		return
	}
	c.closed = true
	delete(c.d.colls, c.tag)
	close(c.done)
}

// Done is closed once both sentinels came (or the stream ended).
func (c *Collection) Done() <-chan struct{} { return c.done }

// Wait waits up to d for the sentinels, ends the collection and returns
// its logs; complete is false when the sentinels did not both come.
func (c *Collection) Wait(d time.Duration) (logs []string, truncated, complete bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	}
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.finish()
	return c.lines.logs, c.lines.truncated, c.complete
}
