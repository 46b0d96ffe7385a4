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
	var size int64
	// Sentinels still to see on each stream; the last one is this activation's.
	needOut, needErr := c.owedOut+1, c.owedErr+1
	defer func() { c.owedOut, c.owedErr = needOut, needErr }()
	for needOut > 0 || needErr > 0 {
		var l LogLine
		var ok bool
		select {
		case l, ok = <-lines:
			if !ok {
				return logs, truncated, false
			}
		case <-ctx.Done():
			return logs, truncated, false
		}
		owed := needOut > 1
		if l.Stream == Stderr {
			owed = needErr > 1
		}
		if l.Text == Sentinel || strings.TrimRight(l.Text, " \t\r") == Sentinel {
			switch l.Stream {
			case Stdout:
				needOut = max(needOut-1, 0)
			case Stderr:
				needErr = max(needErr-1, 0)
			}
			continue
		}
		if truncated || owed {
			continue
		}
		n := int64(len(l.Text)) + 1
		if size+n > limitBytes {
			truncated = true
			logs = append(logs, FormatLogLine(LogLine{Time: l.Time, Stream: Stderr, Text: whisk.MsgLogsTruncated(limitBytes)}))
			continue
		}
		size += n
		logs = append(logs, FormatLogLine(l))
	}
	return logs, truncated, true
}
