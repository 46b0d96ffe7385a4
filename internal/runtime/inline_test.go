package runtime

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
)

// inlineClient is the invoker's runtime client of h's server.
func inlineClient(t *testing.T, h *harness) *container.Client {
	t.Helper()
	u, err := url.Parse(h.url)
	if err != nil {
		t.Fatal(err)
	}
	c := container.NewClient(u.Host)
	t.Cleanup(c.Close)
	return c
}

func inlineInit(t *testing.T, c *container.Client, code string, binary bool, limit int64) container.Response {
	t.Helper()
	resp, err := c.Init(context.Background(), container.InitRequest{
		Name: "test", Main: "main", Code: code, Binary: binary, Logs: container.InlineLogs, LogLimit: limit,
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func inlineRun(ctx context.Context, c *container.Client, id string) (container.Response, error) {
	return c.Run(ctx, container.RunRequest{
		Value: json.RawMessage(`{"name":"Eddy"}`), Namespace: "guest", ActionName: "/guest/test",
		ActivationID: id, TransactionID: "tid", Deadline: "9999999999999",
	})
}

// streamQuiet checks that the container's streams carried nothing before a
// marker the test writes to stdout now (the server writes in order).
func streamQuiet(t *testing.T, h *harness) {
	t.Helper()
	h.srv.writeLine(h.srv.cfg.Stdout, "end-of-test-marker\n")
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l := <-h.logs:
			if l.Text == "end-of-test-marker" {
				return
			}
			t.Errorf("the container's stream carried %s: %q", l.Stream, l.Text)
		case <-timeout:
			t.Fatal("the marker did not come")
		}
	}
}

func texts(lines []container.LogLine) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l.Stream+": "+l.Text)
	}
	return out
}

func TestInlineLogsPython(t *testing.T) {
	h := newHarness(t, LauncherPython)
	c := inlineClient(t, h)
	if resp := inlineInit(t, c, pyHello, false, 0); resp.Status != 200 || !container.ConfirmsInlineLogs(resp.Body) {
		t.Fatalf("init: %d %s", resp.Status, resp.Body)
	}
	for i := 1; i <= 3; i++ {
		resp, err := inlineRun(context.Background(), c, fmt.Sprintf("act%d", i))
		if err != nil || resp.Status != 200 || !resp.Inline {
			t.Fatalf("run %d: %v %d inline=%v %s", i, err, resp.Status, resp.Inline, resp.Body)
		}
		var res map[string]any
		if err := json.Unmarshal(resp.Body, &res); err != nil || res["greeting"] != "Hello Eddy" {
			t.Fatalf("run %d result %q: %v", i, resp.Body, err)
		}
		want := []string{"stdout: hello Eddy", "stderr: to stderr"}
		if i == 1 { // init's output is the first run's
			want = append([]string{"stdout: loading"}, want...)
		}
		got := texts(resp.Logs)
		// stdout and stderr are read apart: compare each stream in order.
		if strings.Join(filter(got, "stdout"), "|") != strings.Join(filter(want, "stdout"), "|") ||
			strings.Join(filter(got, "stderr"), "|") != strings.Join(filter(want, "stderr"), "|") {
			t.Errorf("run %d logs %q, want %q", i, got, want)
		}
		for _, l := range resp.Logs {
			if l.Time.IsZero() || time.Since(l.Time) < 0 {
				t.Errorf("run %d: line %q has time %v", i, l.Text, l.Time)
			}
		}
	}
	streamQuiet(t, h)
}

func filter(lines []string, stream string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, stream+": ") {
			out = append(out, l)
		}
	}
	return out
}

// A runtime that is not asked for inline logs writes sentinels as before
// (an older invoker).
func TestInlineLogsNotAsked(t *testing.T) {
	h := newHarness(t, LauncherPython)
	c := inlineClient(t, h)
	resp, err := c.Init(context.Background(), container.InitRequest{Name: "test", Main: "main", Code: pyHello})
	if err != nil || resp.Status != 200 || container.ConfirmsInlineLogs(resp.Body) {
		t.Fatalf("init: %v %d %s", err, resp.Status, resp.Body)
	}
	h.initOK = true
	h.collect()
	run, err := inlineRun(context.Background(), c, "a")
	if err != nil || run.Status != 200 || run.Inline {
		t.Fatalf("run: %v %d inline=%v", err, run.Status, run.Inline)
	}
	if logs := h.collect(); !hasLine(logs, "stdout", "loading") || !hasLine(logs, "stdout", "hello Eddy") {
		t.Errorf("stream logs %q", logs)
	}
}

// A failed /init writes its lines and the sentinels to the streams, where
// its caller reads them.
func TestInlineLogsFailedInit(t *testing.T) {
	h := newHarness(t, LauncherPython)
	c := inlineClient(t, h)
	resp := inlineInit(t, c, "print('before the error')\nraise ValueError('boom')\n", false, 0)
	if resp.Status == 200 || container.ConfirmsInlineLogs(resp.Body) {
		t.Fatalf("init: %d %s", resp.Status, resp.Body)
	}
	logs := h.collect()
	if !hasLine(logs, "stdout", "before the error") || !hasLine(logs, "stderr", "boom") {
		t.Errorf("logs %q", logs)
	}
}

// A child that dies during a run: its answer carries the lines written
// before.
func TestInlineLogsCrash(t *testing.T) {
	h := newHarness(t, LauncherNative)
	c := inlineClient(t, h)
	script := "#!/bin/sh\nread l\necho 'dying' >&2\necho 'last words'\nexit 3\n"
	if resp := inlineInit(t, c, base64.StdEncoding.EncodeToString([]byte(script)), true, 0); resp.Status != 200 || !container.ConfirmsInlineLogs(resp.Body) {
		t.Fatalf("init: %d %s", resp.Status, resp.Body)
	}
	resp, err := inlineRun(context.Background(), c, "a")
	if err != nil || resp.Status != 502 || !resp.Inline {
		t.Fatalf("run: %v %d %s", err, resp.Status, resp.Body)
	}
	got := strings.Join(texts(resp.Logs), "|")
	if !strings.Contains(got, "stderr: dying") || !strings.Contains(got, "stdout: last words") {
		t.Errorf("logs %q", got)
	}
	streamQuiet(t, h)
}

// A run whose caller gave up (its time limit): POST /logs gives the lines
// it wrote so far.
func TestInlineLogsTimeout(t *testing.T) {
	h := newHarness(t, LauncherPython)
	c := inlineClient(t, h)
	code := "import sys, time\ndef main(a):\n    print('started', flush=True)\n    print('on stderr', file=sys.stderr, flush=True)\n    time.sleep(60)\n    return {}\n"
	if resp := inlineInit(t, c, code, false, 0); resp.Status != 200 {
		t.Fatalf("init: %d %s", resp.Status, resp.Body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := inlineRun(ctx, c, "a")
		done <- err
	}()
	// Wait until the run has written its lines, read through POST /logs
	// itself (the caller has not gone yet: the lines are kept until taken).
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		lines, err := c.Logs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, texts(lines)...)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("run: %v", err)
	}
	if strings.Join(filter(got, "stdout"), "|") != "stdout: started" || strings.Join(filter(got, "stderr"), "|") != "stderr: on stderr" {
		t.Errorf("logs %q", got)
	}
	streamQuiet(t, h)
}

// The runtime keeps no more than the limit (and the first line past it,
// for the caller to cut at and say so).
func TestInlineLogsLimit(t *testing.T) {
	h := newHarness(t, LauncherPython)
	c := inlineClient(t, h)
	code := "def main(a):\n    for i in range(1000):\n        print('x' * 99)\n    return {}\n"
	if resp := inlineInit(t, c, code, false, 1000); resp.Status != 200 {
		t.Fatalf("init: %d %s", resp.Status, resp.Body)
	}
	resp, err := inlineRun(context.Background(), c, "a")
	if err != nil || resp.Status != 200 {
		t.Fatalf("run: %v %d", err, resp.Status)
	}
	if n := len(resp.Logs); n != 11 {
		t.Errorf("%d lines kept, want 11 (10 within 1000 bytes, and the one past it)", n)
	}
	logs, truncated := container.LimitLines(resp.Logs, 1000)
	if !truncated || len(logs) != 11 || !strings.Contains(logs[10], "truncated") {
		t.Errorf("limited: %v %q", truncated, logs)
	}
}
