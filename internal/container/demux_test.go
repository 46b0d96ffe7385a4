package container

import (
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

func tagged(stream, tag, text string) LogLine {
	return LogLine{Time: time.Unix(1700000000, 0), Stream: stream, Text: TagMark + tag + " " + text}
}

func TestDemuxSplitsInterleavedActivations(t *testing.T) {
	d := NewDemux()
	a := d.Start("a", 1<<20)
	b := d.Start("b", 1<<20)
	for _, l := range []LogLine{
		{Stream: Stdout, Text: "plain line of /init"}, // not concurrent mode: no run's
		tagged(Stdout, "a", "a one"),
		tagged(Stdout, "b", "b one"),
		tagged(Stderr, "b", "b err"),
		tagged(Stdout, Untagged, "shared"),
		tagged(Stdout, "zzz", "nobody's"),
		tagged(Stdout, "a", Sentinel),
		tagged(Stdout, "a", "a two (after its stdout sentinel, before stderr's)"),
		tagged(Stderr, "a", Sentinel),
		tagged(Stdout, "a", "a late: dropped"),
		tagged(Stdout, "b", "b two"),
	} {
		d.Feed(l)
	}
	select {
	case <-a.Done():
	default:
		t.Fatal("a is not done after both sentinels")
	}
	logs, truncated, complete := a.Wait(time.Second)
	want := []string{"stdout: a one", "stdout: shared", "stdout: a two"}
	if !complete || truncated || len(logs) != len(want) {
		t.Fatalf("a: %q complete=%v truncated=%v", logs, complete, truncated)
	}
	for i, w := range want {
		if !strings.Contains(logs[i], w) {
			t.Errorf("a line %d = %q, want %q", i, logs[i], w)
		}
	}
	// b never got its sentinels: Wait gives up, incomplete, with what came.
	logs, _, complete = b.Wait(10 * time.Millisecond)
	if complete || len(logs) != 4 || !strings.Contains(logs[3], "stdout: b two") || !strings.Contains(logs[1], "stderr: b err") {
		t.Errorf("b: %q complete=%v", logs, complete)
	}
	// Its lines after Wait are dropped, not kept for anyone.
	d.Feed(tagged(Stdout, "b", "b after"))
}

func TestDemuxLimitAndClose(t *testing.T) {
	d := NewDemux()
	c := d.Start("x", 10)
	d.Feed(tagged(Stdout, "x", "12345"))  // 6 bytes with its newline
	d.Feed(tagged(Stdout, "x", "123456")) // would pass 10
	d.Feed(tagged(Stdout, "x", "1"))      // after the cut: nothing more
	d.Close()
	logs, truncated, complete := c.Wait(time.Second)
	if !truncated || complete || len(logs) != 2 || !strings.Contains(logs[1], whisk.MsgLogsTruncated(10)) {
		t.Errorf("logs %q truncated=%v complete=%v", logs, truncated, complete)
	}
	if late := d.Start("y", 10); late == nil {
		t.Fatal("no collection")
	} else if _, _, complete := late.Wait(time.Second); complete {
		t.Error("a collection started after Close is complete")
	}
}

func TestSplitTag(t *testing.T) {
	for _, tc := range []struct {
		in, tag, rest string
		ok            bool
	}{
		{TagMark + "abc hello world", "abc", "hello world", true},
		{TagMark + "- x", Untagged, "x", true},
		{TagMark + "abc", "abc", "", true},
		{"plain", "", "plain", false},
	} {
		tag, rest, ok := SplitTag(tc.in)
		if tag != tc.tag || rest != tc.rest || ok != tc.ok {
			t.Errorf("SplitTag(%q) = %q %q %v", tc.in, tag, rest, ok)
		}
	}
}
