package container

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 123456789, time.UTC)

func feed(lines ...LogLine) chan LogLine {
	ch := make(chan LogLine, len(lines))
	for _, l := range lines {
		ch <- l
	}
	return ch
}

func out(text string) LogLine { return LogLine{Time: t0, Stream: Stdout, Text: text} }
func errl(text string) LogLine {
	return LogLine{Time: t0.Add(-123456789).In(time.FixedZone("X", 3600)), Stream: Stderr, Text: text}
}

func TestFormatLogLine(t *testing.T) {
	if got, want := FormatLogLine(out("hello \r")), "2024-01-01T00:00:00.123456789Z stdout: hello"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	// Whole seconds, in another zone: UTC, and padded to 30 characters.
	if got, want := FormatLogLine(errl("  indented")), "2024-01-01T00:00:00Z           stderr:   indented"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func TestCollectLogsBothSentinels(t *testing.T) {
	ch := feed(out("a"), errl("b"), out(Sentinel), errl("c"), errl(Sentinel),
		out("next"), out(Sentinel), errl(Sentinel))
	logs, truncated, complete := CollectLogs(context.Background(), ch, 1000)
	if !complete || truncated || len(logs) != 3 ||
		!strings.HasSuffix(logs[0], "stdout: a") || !strings.HasSuffix(logs[1], "stderr: b") || !strings.HasSuffix(logs[2], "stderr: c") {
		t.Fatalf("first: %q truncated=%v complete=%v", logs, truncated, complete)
	}
	logs, _, complete = CollectLogs(context.Background(), ch, 1000)
	if !complete || len(logs) != 1 || !strings.HasSuffix(logs[0], "stdout: next") {
		t.Fatalf("second: %q complete=%v", logs, complete)
	}
}

func TestCollectLogsLimit(t *testing.T) {
	// Each line counts its text and a newline: "12345" is 6 bytes.
	ch := feed(out("12345"), out("12345"), out("12345"), errl("more"), out(Sentinel), errl(Sentinel),
		out("clean"), out(Sentinel), errl(Sentinel))
	logs, truncated, complete := CollectLogs(context.Background(), ch, 14)
	if !complete || !truncated || len(logs) != 3 {
		t.Fatalf("%q truncated=%v complete=%v", logs, truncated, complete)
	}
	if want := "stderr: " + whisk.MsgLogsTruncated(14); !strings.HasSuffix(logs[2], want) {
		t.Errorf("last line %q, want suffix %q", logs[2], want)
	}
	logs, truncated, complete = CollectLogs(context.Background(), ch, 14)
	if !complete || truncated || len(logs) != 1 || !strings.HasSuffix(logs[0], "stdout: clean") {
		t.Errorf("next activation: %q truncated=%v complete=%v", logs, truncated, complete)
	}
}

func TestCollectLogsIncomplete(t *testing.T) {
	ch := feed(out("a"), out(Sentinel), errl("b"))
	close(ch)
	logs, _, complete := CollectLogs(context.Background(), ch, 1000)
	if complete || len(logs) != 2 {
		t.Errorf("closed channel: %q complete=%v", logs, complete)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	logs, _, complete = CollectLogs(ctx, feed(out("x"), errl(Sentinel)), 1000)
	if complete || len(logs) != 1 {
		t.Errorf("ended ctx: %q complete=%v", logs, complete)
	}
}

func TestClientTransportError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := NewClient(addr)
	defer c.Close()
	_, err = c.Run(context.Background(), RunRequest{ActivationID: "x"})
	if err == nil || !IsTransport(err) {
		t.Fatalf("refused connection: %v (transport %v)", err, IsTransport(err))
	}
	if IsTransport(context.Canceled) {
		t.Error("a plain error is not a transport error")
	}
}

// TestLogCursorSkipsOwedLines: a collection that gave up before its
// sentinels leaves the rest of its lines owed; the next collection skips
// them on each stream separately and takes only its own.
func TestLogCursorSkipsOwedLines(t *testing.T) {
	lines := make(chan LogLine, 16)
	put := func(stream, text string) { lines <- LogLine{Stream: stream, Text: text} }
	var c LogCursor
	put(Stdout, "first-1")
	put(Stdout, Sentinel) // stdout done, stderr's sentinel not yet there
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	logs, _, complete := c.Collect(ctx, lines, 1<<20) // gives up waiting for stderr's sentinel
	if complete || len(logs) != 1 || !strings.HasSuffix(logs[0], "stdout: first-1") {
		t.Fatalf("first collection = %q complete=%v", logs, complete)
	}
	put(Stderr, "first-late") // still the first activation's
	put(Stderr, Sentinel)
	put(Stdout, "second-out")
	put(Stderr, "second-err")
	put(Stdout, Sentinel)
	put(Stderr, Sentinel)
	logs, _, complete = c.Collect(context.Background(), lines, 1<<20)
	if !complete || len(logs) != 2 || !strings.HasSuffix(logs[0], "second-out") || !strings.HasSuffix(logs[1], "second-err") {
		t.Fatalf("second collection = %q complete=%v", logs, complete)
	}
}
