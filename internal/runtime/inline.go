package runtime

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Inline logs. An /init whose value carries "logs": "inline" (Eddy's
// extension of the protocol; the invoker asks for it in one-at-a-time
// mode) makes the server hand each run's log lines to the caller in the
// run's own answer instead of writing them, and the sentinels, to the
// container's stdout and stderr: on Docker that output goes through the
// daemon's log driver and the attached stream, which cost the daemon more
// CPU per warm call than the rest of the call's path in the container.
// The server confirms the mode in its /init answer ("logs": "inline");
// a server that does not know it ignores the field and answers without it,
// and the caller then reads the container's output as before.
//
// In this mode the action's stdout and stderr are pipes read by the server
// (the tagStream readers of concurrent mode, feeding a buffer instead of
// the container's streams). After the child answers a run, the server
// writes a mark behind the child's lines on each pipe and waits for the
// readers to pass it, so the buffer then holds every line of the run; the
// answer carries them after the result: the header InlineLogsHeader gives
// the result's length in the body, and the rest of the body is the lines,
// each "<o|e><unix nanoseconds> <text>\n" (o: stdout, e: stderr). Lines an
// /init's action wrote are the first run's, as OpenWhisk counts them;
// lines written between runs belong to none (the next run drops them).
// When the run's caller went away (its time limit), the run's lines stay
// in the buffer for POST /logs, which answers them the same way (result
// length 0): the invoker asks for them before it removes the container.
// A failed /init writes the lines it buffered to the container's streams,
// then the sentinels, as without the mode (the caller reads them there).
//
// The container's own stdout and stderr then carry only what the server
// itself writes outside any run (start-up failures, crashes).

// InlineLogs is the value of "logs" in an /init that asks for inline logs
// and in the answer that confirms it; InlineLogsHeader is the header of a
// run's answer that says where its log lines start.
const (
	InlineLogs       = "inline"
	InlineLogsHeader = "Eddy-Logs"
)

// defaultInlineLimit bounds the lines kept per run when /init gave no
// "log_limit" (OpenWhisk's largest log limit).
const defaultInlineLimit = 10 << 20

// inlineLogs is the server's state in inline-logs mode.
type inlineLogs struct {
	s        *Server
	out, err *tagStream
	limit    int64

	mu   sync.Mutex
	buf  []byte // the lines of the run under way, encoded
	size int64  // their texts' bytes, each with its newline
	over bool   // a line past the limit was kept: later ones are dropped
	keep bool   // the buffer holds /init's lines: the first run keeps them
}

// newInlineLogs makes the pipes an action's process writes to in inline
// mode; limit bounds the bytes kept per run (≤ 0: the default).
func (s *Server) newInlineLogs(limit int64) (*inlineLogs, error) {
	if limit <= 0 {
		limit = defaultInlineLimit
	}
	il := &inlineLogs{s: s, limit: limit, keep: true}
	var err error
	if il.out, err = newTagStream(s, nil, nil, func(text string) { il.add('o', text) }); err != nil {
		return nil, err
	}
	if il.err, err = newTagStream(s, nil, nil, func(text string) { il.add('e', text) }); err != nil {
		il.out.close()
		return nil, err
	}
	return il, nil
}

// add keeps one line of the action's output. The first line past the
// limit is kept (the caller cuts there and says the logs were truncated);
// the ones after it are dropped as they come.
func (il *inlineLogs) add(stream byte, text string) {
	now := time.Now().UnixNano()
	il.mu.Lock()
	defer il.mu.Unlock()
	if il.over {
		return
	}
	n := int64(len(text)) + 1
	if il.size+n > il.limit {
		il.over = true
	}
	il.size += n
	il.buf = append(il.buf, stream)
	il.buf = strconv.AppendInt(il.buf, now, 10)
	il.buf = append(il.buf, ' ')
	il.buf = append(il.buf, text...)
	il.buf = append(il.buf, '\n')
}

// startRun drops the lines written since the last run ended (unless they
// are /init's: the first run's).
func (il *inlineLogs) startRun() {
	il.mu.Lock()
	defer il.mu.Unlock()
	if il.keep {
		il.keep = false
		return
	}
	il.reset()
}

func (il *inlineLogs) reset() {
	il.buf, il.size, il.over = il.buf[:0], 0, false
}

// flush waits until the readers have every line the action wrote so far
// (a mark on each pipe, at most 5 s or until ctx ends).
func (il *inlineLogs) flush(ctx context.Context) {
	il.s.passMark(ctx, "logs", il.out, il.err)
}

// take returns the lines kept so far (encoded) and empties the buffer.
func (il *inlineLogs) take() []byte {
	il.mu.Lock()
	defer il.mu.Unlock()
	out := append([]byte(nil), il.buf...)
	il.reset()
	return out
}

// replay writes the lines kept so far to the container's streams (a failed
// /init: its caller reads them there) and empties the buffer.
func (il *inlineLogs) replay() {
	b := il.take()
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i+1], b[i+1:]
		} else {
			line, b = append(b, '\n'), nil
		}
		dst := il.s.cfg.Stdout
		if line[0] == 'e' {
			dst = il.s.cfg.Stderr
		}
		if sp := bytes.IndexByte(line, ' '); sp >= 0 {
			il.s.writeLine(dst, string(line[sp+1:]))
		}
	}
}

// failed ends the mode for an /init that failed: the lines its action
// wrote go to the container's streams, where its caller reads them.
func (il *inlineLogs) failed(ctx context.Context) {
	il.flush(ctx)
	il.replay()
	il.close()
}

// close closes the server's write ends of the pipes.
func (il *inlineLogs) close() {
	il.out.close()
	il.err.close()
}

// inlineMode returns the inline-logs state when /init confirmed the mode.
func (s *Server) inlineMode() *inlineLogs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inl
}

// serveLogs answers POST /logs in inline mode: the lines of the run under
// way so far (its caller gave up on it).
func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request, il *inlineLogs) {
	il.flush(r.Context())
	logs := il.take()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set(InlineLogsHeader, "0")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(logs)
}
