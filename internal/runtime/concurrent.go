package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Concurrent mode. An /init whose value carries "concurrency": N > 1 (for
// the python, nodejs and native launchers) makes the server run up to N
// /run calls at once and tag every line the action writes with the run it
// belongs to, so that whoever reads the container's output can split it per
// activation even though the runs overlap:
//
//   - python and nodejs: one child runs every activation (threads in
//     Python, async tasks in Node.js). The launcher, started with
//     --concurrent, reads "<tag> <json>" lines, answers "<tag> <json>"
//     lines on fd 3, and writes each line of output as TagMark+tag+" "+text,
//     the tag taken from a context variable (Python) or AsyncLocalStorage
//     (Node.js) that follows the activation's thread or async calls;
//   - native: N children, one per slot, each with its own pipes: their
//     lines carry the tag of the run the slot serves.
//
// In this mode the child's stdout and stderr are pipes read by the server,
// which alone writes the container's output, one whole line at a time:
// TagMark+tag+" "+text for a line of the run tagged tag, TagMark+"- "+text
// for a line no run claims (written outside any activation's context), and
// TagMark+tag+" "+Sentinel after the run. To know when a run's lines are
// all out, the server keeps its own copy of the write end of each pipe and,
// once the child answered, writes a mark line behind them; the reader
// writes the run's sentinel when it reaches the mark. The tag is the
// run's activation_id when that is a plain token not in use, else
// "run-<n>". /init itself is not tagged (plain lines, plain sentinels).

// TagMark starts every line of a container in concurrent mode.
const TagMark = "\x1e"

// Untagged is the tag of lines no run claims.
const Untagged = "-"

// markPrefix starts the server's mark lines on the child's pipes; initMark
// is the id of the mark that ends /init's lines.
const (
	markPrefix = "\x00eddy-mark "
	initMark   = "init"
)

var tagToken = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// tagStream is one stream (stdout or stderr) of a child in concurrent mode:
// the pipe the child writes to, read by the server, which writes each line
// tagged to the container's stream dst.
type tagStream struct {
	s      *Server
	dst    io.Writer
	r, w   *os.File // read end (server), write end (the server's copy; the child has its own)
	fixed  func() string
	sink   func(text string) // inline logs (inline.go): every line goes here, untagged
	done   chan struct{}     // closed when the reader ended
	tagged bool              // the init mark was passed (the reader's own)
	mu     sync.Mutex
	marks  map[string]chan struct{} // mark id → closed when the reader passed it
	closed bool
}

func newTagStream(s *Server, dst io.Writer, fixed func() string, sink func(string)) (*tagStream, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ts := &tagStream{s: s, dst: dst, r: r, w: w, fixed: fixed, sink: sink, done: make(chan struct{}), marks: map[string]chan struct{}{}}
	go ts.read()
	return ts, nil
}

func (ts *tagStream) read() {
	defer close(ts.done)
	br := bufio.NewReaderSize(ts.r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			ts.line(strings.TrimSuffix(line, "\n"), err == nil)
		}
		if err != nil {
			ts.mu.Lock()
			for id, ch := range ts.marks {
				close(ch)
				delete(ts.marks, id)
			}
			ts.closed = true
			ts.mu.Unlock()
			return
		}
	}
}

// line handles one line read from the child's pipe.
func (ts *tagStream) line(text string, whole bool) {
	if i := strings.Index(text, markPrefix); i >= 0 && whole {
		if i > 0 {
			ts.emit(text[:i])
		}
		id := text[i+len(markPrefix):]
		switch {
		case ts.sink != nil:
			// Inline logs: the mark only says the lines before it are in.
		case id == initMark:
			ts.tagged = true
		default:
			tag, _, _ := strings.Cut(id, " ")
			ts.s.writeLine(ts.dst, TagMark+tag+" "+Sentinel+"\n")
		}
		ts.mu.Lock()
		if ch, ok := ts.marks[id]; ok {
			close(ch)
			delete(ts.marks, id)
		}
		ts.mu.Unlock()
		return
	}
	ts.emit(text)
}

// emit writes one line of the child's output, tagged once /init is over
// (lines written while it runs are /init's, plain).
func (ts *tagStream) emit(text string) {
	if ts.sink != nil {
		ts.sink(text)
		return
	}
	if !ts.tagged {
		ts.s.writeLine(ts.dst, text+"\n")
		return
	}
	tag := Untagged
	if ts.fixed != nil {
		if t := ts.fixed(); t != "" {
			tag = t
		}
	} else if rest, ok := strings.CutPrefix(text, TagMark); ok {
		if t, txt, ok := strings.Cut(rest, " "); ok && t != "" {
			tag, text = t, txt
		} else {
			text = rest
		}
	}
	ts.s.writeLine(ts.dst, TagMark+tag+" "+text+"\n")
}

// mark writes mark id behind everything the child wrote so far and returns
// a channel closed once the reader passed it (or ended).
func (ts *tagStream) mark(id string) <-chan struct{} {
	ch := make(chan struct{})
	ts.mu.Lock()
	if ts.closed {
		ts.mu.Unlock()
		close(ch)
		return ch
	}
	ts.marks[id] = ch
	ts.mu.Unlock()
	go func() {
		if _, err := io.WriteString(ts.w, markPrefix+id+"\n"); err != nil {
			ts.mu.Lock()
			if c, ok := ts.marks[id]; ok {
				close(c)
				delete(ts.marks, id)
			}
			ts.mu.Unlock()
		}
	}()
	return ch
}

// close closes the server's write end: the reader ends once the child's
// copy is closed too (the child exited).
func (ts *tagStream) close() { ts.w.Close() }

// writeLine writes one whole line to w under the output lock.
func (s *Server) writeLine(w io.Writer, line string) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	_, _ = io.WriteString(w, line)
}

// slot is a child in concurrent mode with its tagged streams. Python and
// Node.js have one slot shared by every run; native has one per run slot.
type slot struct {
	ch       *child
	out, err *tagStream
	tag      string // native: the tag of the run it serves (under conc.mu)

	// python/nodejs: answers by tag
	wmu     sync.Mutex
	waiting map[string]chan []byte
	inMu    sync.Mutex // one message at a time on the child's stdin
}

// conc is the server's state in concurrent mode.
type conc struct {
	n      int
	shared bool       // one child for every run (python, nodejs)
	free   chan *slot // native: idle slots; python/nodejs: n tokens of the one slot
	slots  []*slot    // every slot, for Close
	mu     sync.Mutex // inUse, seq, slot tags
	inUse  map[string]bool
	seq    int
	dead   chan struct{} // python/nodejs: closed when the shared child's answers end
}

// startConcurrent starts the children of an /init with concurrency n > 1.
func (s *Server) startConcurrent(cmd *command, env []string, n int, shared bool, ctx context.Context) (*conc, int, any) {
	c := &conc{n: n, shared: shared, free: make(chan *slot, n), inUse: map[string]bool{}}
	children := n
	if shared {
		children = 1
		cmd.args = append(cmd.args, "--concurrent")
	}
	fail := func(status int, resp any) (*conc, int, any) {
		c.close()
		return nil, status, resp
	}
	for range children {
		sl := &slot{}
		var fixed func() string
		if !shared {
			fixed = func() string {
				c.mu.Lock()
				defer c.mu.Unlock()
				return sl.tag
			}
		}
		var err error
		if sl.out, err = newTagStream(s, s.cfg.Stdout, fixed, nil); err != nil {
			return fail(http.StatusInternalServerError, errBody(err.Error()))
		}
		if sl.err, err = newTagStream(s, s.cfg.Stderr, fixed, nil); err != nil {
			sl.out.close()
			return fail(http.StatusInternalServerError, errBody(err.Error()))
		}
		c.slots = append(c.slots, sl)
		sl.ch, err = startChild(cmd, env, sl.out.w, sl.err.w)
		if err != nil {
			return fail(http.StatusBadGateway, errBody(msgNoBinary))
		}
		if cmd.waitAck {
			if status, resp, ok := s.awaitAck(ctx, sl.ch); !ok {
				return fail(status, resp)
			}
		}
		if shared {
			sl.waiting = map[string]chan []byte{}
			c.dead = make(chan struct{})
			go sl.dispatch(c.dead)
		}
	}
	// /init's lines (the action's start-up output) go out plain, before
	// /init's plain sentinels: wait for the readers to pass them.
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	for _, sl := range c.slots {
		for _, ch := range []<-chan struct{}{sl.out.mark(initMark), sl.err.mark(initMark)} {
			select {
			case <-ch:
			case <-t.C:
			case <-ctx.Done():
			}
		}
	}
	for i := range n {
		if shared {
			c.free <- c.slots[0]
		} else {
			c.free <- c.slots[i]
		}
	}
	return c, 0, nil
}

// dispatch hands the shared child's answers ("<tag> <json>") to their runs.
func (sl *slot) dispatch(dead chan struct{}) {
	defer close(dead)
	for line := range sl.ch.lines {
		tag, ans, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(" "))
		sl.wmu.Lock()
		w, ok := sl.waiting[string(tag)]
		delete(sl.waiting, string(tag))
		sl.wmu.Unlock()
		if ok {
			w <- ans
		}
	}
}

// close kills every child and closes the server's pipe ends.
func (c *conc) close() {
	for _, sl := range c.slots {
		if sl.ch != nil {
			sl.ch.kill()
		}
		sl.out.close()
		sl.err.close()
	}
}

// takeTag picks the tag of a run: its activation id when usable.
func (c *conc) takeTag(body []byte) string {
	var m struct {
		ActivationID string `json:"activation_id"`
	}
	_ = json.Unmarshal(body, &m)
	c.mu.Lock()
	defer c.mu.Unlock()
	tag := m.ActivationID
	if !tagToken.MatchString(tag) || c.inUse[tag] || tag == Untagged {
		c.seq++
		tag = "run-" + strconv.Itoa(c.seq)
	}
	c.inUse[tag] = true
	return tag
}

func (c *conc) releaseTag(tag string) {
	c.mu.Lock()
	delete(c.inUse, tag)
	c.mu.Unlock()
}

// runConcurrent is /run in concurrent mode; it writes the run's tagged
// sentinels itself (before it returns).
func (s *Server) runConcurrent(ctx context.Context, c *conc, body []byte) (int, any) {
	tag := c.takeTag(body)
	defer c.releaseTag(tag)
	var sl *slot
	select {
	case sl = <-c.free:
	case <-ctx.Done():
		s.taggedSentinels(tag)
		return http.StatusServiceUnavailable, errBody("the run was cancelled while waiting for the action")
	}
	defer func() { c.free <- sl }()
	var line bytes.Buffer
	if err := json.Compact(&line, body); err != nil {
		s.taggedSentinels(tag)
		return http.StatusBadRequest, errBody("The request body is not valid JSON: " + err.Error())
	}
	var answer []byte
	var err error
	if c.shared {
		answer, err = sl.sharedRoundTrip(ctx, tag, line.Bytes(), c.dead)
	} else {
		c.mu.Lock()
		sl.tag = tag
		c.mu.Unlock()
		answer, err = sl.ch.roundTrip(ctx, line.Bytes())
	}
	// Everything the child wrote for this run precedes its answer: mark
	// the end of it on both pipes and wait for the readers to pass it.
	s.endRun(ctx, sl, tag)
	if !c.shared {
		c.mu.Lock()
		sl.tag = ""
		c.mu.Unlock()
	}
	return s.runAnswer(answer, err)
}

// endRun writes the run's sentinels through the slot's pipes (after the
// child's lines); when the readers are gone it writes them directly.
func (s *Server) endRun(ctx context.Context, sl *slot, tag string) {
	s.passMark(ctx, tag, sl.out, sl.err)
	select {
	case <-sl.out.done:
		s.writeLine(s.cfg.Stdout, TagMark+tag+" "+Sentinel+"\n")
	default:
	}
	select {
	case <-sl.err.done:
		s.writeLine(s.cfg.Stderr, TagMark+tag+" "+Sentinel+"\n")
	default:
	}
}

// passMark writes a mark ("<name> <seq>") behind the child's lines on out
// and on errs and waits until both readers passed it (at most 5 s or until
// ctx ends).
func (s *Server) passMark(ctx context.Context, name string, out, errs *tagStream) {
	s.mu.Lock()
	s.markSeq++
	id := name + " " + strconv.Itoa(s.markSeq)
	s.mu.Unlock()
	a, b := out.mark(id), errs.mark(id)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	for _, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
		}
	}
}

func (s *Server) taggedSentinels(tag string) {
	s.writeLine(s.cfg.Stdout, TagMark+tag+" "+Sentinel+"\n")
	s.writeLine(s.cfg.Stderr, TagMark+tag+" "+Sentinel+"\n")
}

// sharedRoundTrip sends "<tag> <line>" to the shared child and waits for
// the answer tagged tag.
func (sl *slot) sharedRoundTrip(ctx context.Context, tag string, line []byte, dead <-chan struct{}) ([]byte, error) {
	w := make(chan []byte, 1)
	sl.wmu.Lock()
	sl.waiting[tag] = w
	sl.wmu.Unlock()
	defer func() {
		sl.wmu.Lock()
		delete(sl.waiting, tag)
		sl.wmu.Unlock()
	}()
	msg := make([]byte, 0, len(tag)+len(line)+2)
	msg = append(append(append(append(msg, tag...), ' '), line...), '\n')
	go func() {
		sl.inMu.Lock()
		defer sl.inMu.Unlock()
		_, _ = sl.ch.stdin.Write(msg)
	}()
	select {
	case ans := <-w:
		return ans, nil
	case <-dead:
		select {
		case ans := <-w:
			return ans, nil
		default:
		}
		return nil, errExited
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// serveConcurrent serves one /run in concurrent mode.
func (s *Server) serveConcurrent(w http.ResponseWriter, r *http.Request, c *conc) {
	status, resp := http.StatusMethodNotAllowed, any(errBody("method not allowed"))
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			status, resp = http.StatusBadRequest, errBody("cannot read the request: "+err.Error())
			tag := c.takeTag(nil)
			s.taggedSentinels(tag)
			c.releaseTag(tag)
		} else {
			status, resp = s.runConcurrent(r.Context(), c, body)
		}
	} else {
		s.taggedSentinels(Untagged)
	}
	out, ok := resp.([]byte)
	if !ok {
		out, _ = json.Marshal(resp)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}
