package docker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	eddyc "github.com/eddy-faas/eddy/internal/container"
)

// maxLine bounds one log line held in memory; a longer line is delivered in
// pieces of this size (far above any activation's log limit, so nothing a
// collector keeps is ever cut by it).
const maxLine = 16 << 20

var errGone = errors.New("container removed")

// attach attaches to the container's stdout and stderr before it starts
// (nil when that fails: follow then reads the log instead). Attached, the
// output comes straight from the daemon's copy of the container's pipes;
// the log (Follow on ContainerLogs) comes through the log driver's file and
// the daemon's watch of it, a step more per line, which the sentinels of an
// image that writes them wait for after every run. Attached before the
// start, nothing the container writes is missed.
func (c *Container) attach(ctx context.Context) *types.HijackedResponse {
	hr, err := c.b.cli.ContainerAttach(ctx, c.id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		c.b.log.Debug("cannot attach to a container: following its log", "container", c.name, "err", err)
		return nil
	}
	return &hr
}

// follow streams the container's output into c.logs until the container
// has exited and its output is drained, or until it is removed: from the
// attached streams (hr), or, when hr is nil, from its log.
//
// The Engine sends each piece of output as one multiplexed frame; from the
// log, each message is prefixed (Timestamps) with its RFC 3339 time, and
// stdcopy.StdCopy hands each frame's payload to the stream's writer in one
// Write. Docker's log drivers split lines longer than 16 KiB into partial
// messages, each with its own timestamp and without the newline; attached
// frames are pieces of the pipes' bytes: lineWriter joins pieces into
// lines and keeps the time of the first piece (for attached output, the
// time it came).
func (c *Container) follow(hr *types.HijackedResponse) {
	defer close(c.logs)
	ctx, cancel := context.WithCancel(c.b.ctx)
	defer cancel()
	go func() {
		select {
		case <-c.gone:
			cancel()
		case <-ctx.Done():
		}
		if hr != nil {
			hr.Close() // wakes the read
		}
	}()

	var rc io.Reader
	if hr != nil {
		rc = hr.Reader
	} else {
		lr, err := c.b.cli.ContainerLogs(ctx, c.id, container.LogsOptions{
			ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true,
		})
		if err != nil {
			if ctx.Err() == nil {
				c.b.log.Warn("cannot follow a container's log", "container", c.name, "err", err)
			}
			return
		}
		defer lr.Close()
		rc = lr
	}
	stdout := &lineWriter{stream: eddyc.Stdout, emit: c.emit, stamped: hr == nil}
	stderr := &lineWriter{stream: eddyc.Stderr, emit: c.emit, stamped: hr == nil}
	_, err := stdcopy.StdCopy(stdout, stderr, rc)
	if err != nil && ctx.Err() == nil && !errors.Is(err, errGone) {
		c.b.log.Warn("reading a container's log failed", "container", c.name, "err", err)
	}
	if ctx.Err() == nil {
		stdout.flush()
		stderr.flush()
	}
	// The stream ends when the container stops; close Logs only once Done
	// is closed too, as the interface promises.
	select {
	case <-c.done:
	case <-ctx.Done():
	}
}

// emit delivers one line unless the container has been removed.
func (c *Container) emit(l eddyc.LogLine) error {
	select {
	case c.logs <- l:
		return nil
	case <-c.gone:
		return errGone
	case <-c.b.ctx.Done():
		return errGone
	}
}

// lineWriter turns the log frames of one stream into LogLines.
type lineWriter struct {
	stream  string
	stamped bool // each frame starts with its time (the log, not attached output)
	emit    func(eddyc.LogLine) error
	pending []byte
	open    bool      // a line is in progress
	at      time.Time // time of its first piece
}

// Write takes one frame: "<RFC3339Nano time> <text>" (stamped), where text
// ends with a newline unless it is part of a longer line, or any piece of
// the stream's bytes (attached).
func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	t := time.Now()
	if w.stamped {
		if ts, rest, ok := bytes.Cut(p, []byte{' '}); ok {
			if pt, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil {
				t, p = pt, rest
			}
		}
	}
	for len(p) > 0 {
		if !w.open {
			w.open, w.at = true, t
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.pending = append(w.pending, p...)
			if len(w.pending) >= maxLine {
				if err := w.flush(); err != nil {
					return 0, err
				}
			}
			break
		}
		w.pending = append(w.pending, p[:i]...)
		if err := w.flush(); err != nil {
			return 0, err
		}
		p = p[i+1:]
	}
	return n, nil
}

// flush delivers the line in progress, if any.
func (w *lineWriter) flush() error {
	if !w.open {
		return nil
	}
	l := eddyc.LogLine{Time: w.at, Stream: w.stream, Text: string(w.pending)}
	w.pending, w.open = w.pending[:0], false
	return w.emit(l)
}

// logTail is the last n lines of the container's output, both streams, for
// error messages; "" when it cannot be read.
func (c *Container) logTail(ctx context.Context, n int) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rc, err := c.b.cli.ContainerLogs(ctx, c.id, container.LogsOptions{
		ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n),
	})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, _ = stdcopy.StdCopy(&buf, &buf, rc)
	s := strings.TrimRight(buf.String(), "\n")
	if len(s) > 4096 {
		s = "…" + s[len(s)-4096:]
	}
	return s
}
