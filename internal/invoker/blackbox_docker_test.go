package invoker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/whisk"
	"github.com/eddy-faas/eddy/test/fixtures"
)

// Blackbox images that behave as OpenWhisk's runtime images do
// (test/fixtures: the actionloop proxy, which writes no sentinels after a
// successful /init, and the dockerskeleton), run by the invoker on Docker.

var (
	fixturesOnce sync.Once
	fixturesErr  error
)

// dockerFixtures returns an invoker env on a Docker backend with the
// fixture images built, or skips when Docker is unusable (fails with
// EDDY_REQUIRE_DOCKER=1).
func dockerFixtures(t *testing.T, cfg invoker.Config) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := dockerBackend(ctx, t, fmt.Sprintf("bb-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-")), "")
	fixturesOnce.Do(func() { fixturesErr = fixtures.Build(ctx, b.Client()) })
	if fixturesErr != nil {
		t.Fatalf("building the fixture images: %v", fixturesErr)
	}
	return newEnvWith(t, cfg, etcd, envWrap{backend: func(container.Backend) container.Backend { return b }})
}

// putBlackbox stores a blackbox action of image.
func (e *env) putBlackbox(name, image, code string, limits whisk.Limits) whisk.Action {
	e.t.Helper()
	if limits.Timeout == 0 {
		limits.Timeout = 60000
	}
	if limits.Memory == 0 {
		limits.Memory = 256
	}
	limits.Logs, limits.Concurrency = 10, max(limits.Concurrency, 1)
	a, err := e.store.PutAction(e.ctx, whisk.Action{
		Namespace: "guest", Name: name, Version: "0.0.1",
		Exec: whisk.Exec{Kind: whisk.KindBlackbox, Image: image, Code: code}, Limits: limits,
	}, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// wantLogs checks that logs are exactly the lines want (stream: text), in
// order per stream.
func wantLogs(t *testing.T, what string, logs []string, want ...string) {
	t.Helper()
	var got []string
	for _, l := range logs {
		_, rest, _ := strings.Cut(l, " ")
		got = append(got, strings.TrimLeft(rest, " "))
	}
	per := func(lines []string) map[string][]string {
		m := map[string][]string{}
		for _, l := range lines {
			stream, _, _ := strings.Cut(l, ":")
			m[stream] = append(m[stream], l)
		}
		return m
	}
	if fmt.Sprint(per(got)) != fmt.Sprint(per(want)) {
		t.Errorf("%s: logs %q, want %q", what, got, want)
	}
}

func TestActionloopFixtureLogs(t *testing.T) {
	t.Parallel()
	e := dockerFixtures(t, invoker.Config{LogWait: 20 * time.Second})
	a := e.putBlackbox("al", fixtures.ActionloopImage, "any code", whisk.Limits{Timeout: 1000})
	if ack := e.create(a); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	// Cold: the action's start-up output (during /init, after which the
	// proxy writes no sentinels) is the first activation's.
	rec := e.invoke(a, `{"name":"a"}`)
	if rec.StatusCode != 0 || !strings.Contains(string(rec.Response.Result), `"greeting":"Hello a"`) {
		t.Fatalf("cold: %+v %s", rec.Response, rec.Response.Result)
	}
	wantLogs(t, "cold", rec.Logs, "stdout: started", "stdout: hello a", "stderr: to stderr")
	for _, name := range []string{"b", "c"} {
		rec = e.invoke(a, `{"name":"`+name+`"}`)
		if rec.StatusCode != 0 {
			t.Fatalf("warm: %+v %s", rec.Response, rec.Response.Result)
		}
		wantLogs(t, "warm "+name, rec.Logs, "stdout: hello "+name, "stderr: to stderr")
	}

	// A run past the 1 s limit: the lines printed so far, then the notice.
	rec = e.invoke(a, `{"name":"slow","sleep":5000}`)
	if errorOf(rec) != whisk.MsgTimeLimit(1000, false) {
		t.Fatalf("timeout: %+v %s", rec.Response, rec.Response.Result)
	}
	if rec.Duration < 1000 || rec.Duration >= 5000 {
		t.Errorf("timed-out duration %d ms, want the 1000 ms limit, not the 5000 ms sleep", rec.Duration)
	}
	wantLogs(t, "timeout", rec.Logs, "stdout: hello slow", "stdout: sleeping", "stderr: to stderr", "stderr: "+whisk.MsgLogsMaybeGone)
	e.expectGone(a)

	// A new container; the action's process dies mid-run.
	if ack := e.create(a); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	rec = e.invoke(a, `{"name":"x","exit":true}`)
	if errorOf(rec) != whisk.MsgRunExited {
		t.Fatalf("exit: %+v %s", rec.Response, rec.Response.Result)
	}
	wantLogs(t, "exit", rec.Logs, "stdout: started", "stdout: hello x", "stderr: to stderr", "stderr: "+whisk.MsgLogsMaybeGone)
	e.expectGone(a)
}

func TestActionloopFixtureInitFailureAndOOM(t *testing.T) {
	t.Parallel()
	e := dockerFixtures(t, invoker.Config{LogWait: 20 * time.Second})
	// A failed /init (OW_LOG_INIT_ERROR set: the detail goes to stderr,
	// then the sentinels).
	a := e.putBlackbox("bad", fixtures.ActionloopImage, "FAIL to compile", whisk.Limits{Timeout: 5000})
	if ack := e.create(a); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	rec := e.invoke(a, `{}`)
	if rec.Response.Status != "action developer error" || !strings.Contains(errorOf(rec), "The action failed to generate or locate a binary. See logs for details.") {
		t.Fatalf("init failure: %+v %s", rec.Response, rec.Response.Result)
	}
	wantLogs(t, "init failure", rec.Logs, "stderr: compile error: the code asked to fail", "stderr: "+whisk.MsgLogsMaybeGone)
	e.expectGone(a)

	// The kernel kills the action's process (not the proxy) for memory:
	// the container's cgroup counted it.
	m := e.putBlackbox("hog", fixtures.ActionloopImage, "any code", whisk.Limits{Memory: 128})
	if ack := e.create(m); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	rec = e.invoke(m, `{"name":"hog","alloc":400}`)
	if errorOf(rec) != whisk.MsgOOM {
		t.Fatalf("oom: %+v %s logs %q", rec.Response, rec.Response.Result, rec.Logs)
	}
	e.expectGone(m)
}

func TestSkeletonFixtureLogs(t *testing.T) {
	t.Parallel()
	e := dockerFixtures(t, invoker.Config{LogWait: 20 * time.Second})
	a := e.putBlackbox("sk", fixtures.SkeletonImage, "#!/bin/bash\necho hi", whisk.Limits{Timeout: 1000})
	if ack := e.create(a); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	for _, name := range []string{"a", "b"} {
		rec := e.invoke(a, `{"name":"`+name+`"}`)
		if rec.StatusCode != 0 || !strings.Contains(string(rec.Response.Result), `"greeting":"Hello `+name+`"`) {
			t.Fatalf("%s: %+v %s", name, rec.Response, rec.Response.Result)
		}
		wantLogs(t, name, rec.Logs, "stdout: hello "+name, "stderr: to stderr")
	}
	rec := e.invoke(a, `{"name":"slow","sleep":5000}`)
	if errorOf(rec) != whisk.MsgTimeLimit(1000, false) {
		t.Fatalf("timeout: %+v %s", rec.Response, rec.Response.Result)
	}
	// The skeleton writes the exec's output once it ended: a killed run's
	// is lost (as upstream's).
	wantLogs(t, "timeout", rec.Logs, "stderr: "+whisk.MsgLogsMaybeGone)
	e.expectGone(a)

	// A failed /init writes no sentinels in the skeleton: the logs are read
	// without waiting for them.
	f := e.putBlackbox("skbad", fixtures.SkeletonImage, "FAIL", whisk.Limits{})
	if ack := e.create(f); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	rec = e.invoke(f, `{}`)
	if rec.Response.Status != "action developer error" {
		t.Fatalf("init failure: %+v %s", rec.Response, rec.Response.Result)
	}
	wantLogs(t, "init failure", rec.Logs, "stderr: "+whisk.MsgLogsMaybeGone)
}

// Activations one after another on one actionloop container, queued at
// once: each record has its own lines only.
func TestActionloopFixtureQueued(t *testing.T) {
	t.Parallel()
	e := dockerFixtures(t, invoker.Config{LogWait: 20 * time.Second})
	a := e.putBlackbox("q", fixtures.ActionloopImage, "any code", whisk.Limits{})
	if ack := e.create(a); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	const n = 6
	ids := map[whisk.ActivationID]string{}
	for i := range n {
		m := e.enqueue(a, fmt.Sprintf(`{"name":"n%d","lines":3,"sleep":50}`, i))
		ids[m.ActivationID] = fmt.Sprintf("n%d", i)
	}
	for range n {
		rec := e.completion(30 * time.Second)
		name, ok := ids[rec.ActivationID]
		if !ok || rec.StatusCode != 0 {
			t.Fatalf("record %s: %+v", rec.ActivationID, rec.Response)
		}
		want := []string{"stdout: hello " + name, "stdout: line 0", "stdout: line 1", "stdout: line 2", "stdout: sleeping", "stderr: to stderr"}
		if strings.Contains(strings.Join(rec.Logs, "\n"), "started") {
			want = append([]string{"stdout: started"}, want...)
		}
		wantLogs(t, name, rec.Logs, want...)
	}
}

// Images that cannot run are the developer's error, acknowledged at once
// (not retried) with a message saying why.
func TestBadImagesAreDeveloperErrors(t *testing.T) {
	t.Parallel()
	e := dockerFixtures(t, invoker.Config{})
	for _, c := range []struct {
		image, want string
	}{
		{fixtures.NoCommandImage, "No command specified"},
		{fixtures.ExitImage, "exited with code 3 before it accepted connections on port 8080"},
		{fixtures.BadEntrypointImage, "no such file or directory"},
		{fixtures.ListenNeverImage, "did not accept connections on port 8080 within 5s"},
	} {
		a := e.putBlackbox(strings.NewReplacer("/", "-", ":", "-").Replace(c.image), c.image, "x", whisk.Limits{Timeout: 1000})
		ack := e.create(a)
		t.Logf("%s: %s", c.image, ack.Error)
		if !ack.Developer || ack.Retryable || !strings.Contains(ack.Error, c.want) || !strings.Contains(ack.Error, c.image) {
			t.Errorf("%s: ack %+v, want a developer error saying %q", c.image, ack, c.want)
		}
	}
}

// A blocking caller that takes only the result gets its completion before
// the logs of an image that writes sentinels are read from the stream (and
// the next run does not wait for them); the record has the logs, each
// activation its own.
func TestActionloopFixtureResultOnly(t *testing.T) {
	t.Parallel()
	e := dockerFixtures(t, invoker.Config{LogWait: 20 * time.Second})
	a := e.putBlackbox("alr", fixtures.ActionloopImage, "any code", whisk.Limits{Timeout: 10000})
	if ack := e.create(a); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	for i, name := range []string{"a", "b", "c", "d", "e"} {
		m := &whisk.ActivationMessage{
			ActivationID: whisk.NewActivationID(), TransactionID: whisk.NewTransactionID(),
			Action: a.Meta(), Subject: "guest", Params: json.RawMessage(`{"name":"` + name + `"}`),
			Blocking: true, ResultOnly: true, ControllerID: "c0", Published: time.Now().UnixMilli(),
		}
		e.stub.queue <- m
		c := e.completion(30 * time.Second)
		if c.ActivationID != m.ActivationID || !strings.Contains(string(c.Response.Result), `"greeting":"Hello `+name+`"`) {
			t.Fatalf("%s: completion %s %s", name, c.ActivationID, c.Response.Result)
		}
		// The first collection tells whether the image writes sentinels
		// (it waits for the stream to settle): only later runs complete
		// early.
		if i > 0 && len(c.Logs) != 0 {
			t.Errorf("%s: the early completion has logs %q", name, c.Logs)
		}
		want := []string{"stdout: hello " + name, "stderr: to stderr"}
		if i == 0 {
			want = append([]string{"stdout: started"}, want...)
		}
		rec := e.record(m.ActivationID)
		wantLogs(t, "record "+name, rec.Logs, want...)
	}
	// Without ResultOnly the completion carries the logs.
	rec := e.invoke(a, `{"name":"f"}`)
	wantLogs(t, "full", rec.Logs, "stdout: hello f", "stderr: to stderr")
}
