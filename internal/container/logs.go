package container

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// FormatLogLine formats l as OpenWhisk shows activation logs: the RFC 3339
// UTC timestamp with nanoseconds, padded to 30 characters, a space, the
// stream, ": " and the text (trailing white space removed).
func FormatLogLine(l LogLine) string {
	return fmt.Sprintf("%-30s %s: %s", l.Time.UTC().Format(time.RFC3339Nano), l.Stream, strings.TrimRight(l.Text, " \t\r\n"))
}

// CollectLogs reads one activation's lines from lines until it has seen the
// Sentinel on both streams; the sentinel lines are dropped. Each line is
// formatted with FormatLogLine. Once the lines' texts (each counted with
// its newline) would pass limitBytes, nothing more is added but one stderr
// line saying whisk.MsgLogsTruncated(limitBytes), and truncated is true;
// reading goes on to the sentinels, so that the next activation's logs start
// clean. complete is false when lines was closed or ctx ended before both
// sentinels came.
//
// Lines written on one stream after its sentinel but before the other
// stream's sentinel are counted to this activation (as OpenWhisk does).
func CollectLogs(ctx context.Context, lines <-chan LogLine, limitBytes int64) (logs []string, truncated bool, complete bool) {
	var c LogCursor
	return c.Collect(ctx, lines, limitBytes)
}

// LogCursor is one container's position in its log stream across
// activations. When a collection ends before both of its sentinels came
// (the caller stopped waiting), the rest of that activation's lines are
// still on their way; the cursor remembers the sentinels owed on each
// stream, and the next Collect skips those lines instead of taking them for
// its own. The zero value is a container with nothing owed.
type LogCursor struct {
	owedOut, owedErr int
}

// Collect is CollectLogs for the next activation of the cursor's container.
func (c *LogCursor) Collect(ctx context.Context, lines <-chan LogLine, limitBytes int64) (logs []string, truncated bool, complete bool) {
	col := c.Start(limitBytes)
	for !col.Done() {
		select {
		case l, ok := <-lines:
			if !ok {
				return col.End()
			}
			col.Feed(l)
		case <-ctx.Done():
			return col.End()
		}
	}
	return col.End()
}

// LogCollection is Collect taken apart, for a reader that owns the stream
// and hands it the lines one at a time (Feed) until it is Done or the
// reader stops waiting; End then gives Collect's results and moves the
// cursor on. A cursor has one collection at a time.
type LogCollection struct {
	c                *LogCursor
	needOut, needErr int // sentinels still to see on each stream; the last one is this activation's
	lines            limitedLines
	noDebt           bool // End leaves nothing owed (NoDebt)
}

// NoDebt says that the sentinels this collection does not see are not
// owed: the runtime may never write them (a blackbox image that does not
// follow the sentinel protocol, or a container that is going), so the next
// collection must not skip lines waiting for them.
func (col *LogCollection) NoDebt() { col.noDebt = true }

// limitedLines gathers an activation's formatted lines up to its log
// limit: the line that would pass it is replaced by the truncation notice,
// and every line after it is dropped (CollectLogs's rule, for the cursor's
// collections and the demux's alike).
type limitedLines struct {
	limit, size int64
	logs        []string
	truncated   bool
}

func (ll *limitedLines) add(l LogLine) {
	if ll.truncated {
		return
	}
	n := int64(len(l.Text)) + 1
	if ll.size+n > ll.limit {
		ll.truncated = true
		ll.logs = append(ll.logs, FormatLogLine(LogLine{Time: l.Time, Stream: Stderr, Text: whisk.MsgLogsTruncated(ll.limit)}))
		return
	}
	ll.size += n
	ll.logs = append(ll.logs, FormatLogLine(l))
}

// TakeOwed returns the sentinels the cursor owes on each stream and owes
// none from then on: a collection already started takes the debt (Owe).
func (c *LogCursor) TakeOwed() (out, err int) {
	out, err = c.owedOut, c.owedErr
	c.owedOut, c.owedErr = 0, 0
	return out, err
}

// Owe makes the collection skip the lines before out more sentinels on
// stdout and err more on stderr: those of an earlier collection that ended
// without them while this one was already under way.
func (col *LogCollection) Owe(out, err int) {
	col.needOut += out
	col.needErr += err
}

// Start begins the collection of the cursor's next activation.
func (c *LogCursor) Start(limitBytes int64) LogCollection {
	return LogCollection{c: c, needOut: c.owedOut + 1, needErr: c.owedErr + 1, lines: limitedLines{limit: limitBytes}}
}

// Done reports whether both of the activation's sentinels came.
func (col *LogCollection) Done() bool { return col.needOut == 0 && col.needErr == 0 }

// Feed takes the next line of the stream.
func (col *LogCollection) Feed(l LogLine) {
	if col.Done() {
		return
	}
	owed := col.needOut > 1
	if l.Stream == Stderr {
		owed = col.needErr > 1
	}
	if l.Text == Sentinel || strings.TrimRight(l.Text, " \t\r") == Sentinel {
		switch l.Stream {
		case Stdout:
			col.needOut = max(col.needOut-1, 0)
		case Stderr:
			col.needErr = max(col.needErr-1, 0)
		}
		return
	}
	if !owed {
		col.lines.add(l)
	}
}

// End ends the collection: its lines, whether they were truncated, and
// whether both sentinels came (complete). The sentinels that did not come
// are owed: the cursor's next collection skips the lines before them.
func (col *LogCollection) End() (logs []string, truncated bool, complete bool) {
	col.c.owedOut, col.c.owedErr = col.needOut, col.needErr
	if col.noDebt {
		col.c.owedOut, col.c.owedErr = 0, 0
	}
	return col.lines.logs, col.lines.truncated, col.Done()
}
