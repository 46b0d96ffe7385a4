package invoker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/whisk"
)

const helloPy = `import sys
def main(args):
    name = args.get("name", "stranger")
    print("hello on stdout " + name)
    print("hello on stderr " + name, file=sys.stderr)
    return {"greeting": "Hello " + name}
`

func TestPythonSuccessColdThenWarm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{})
	a := e.putAction("hello", "python:3.11", helloPy, whisk.Limits{})
	ack := e.create(a)
	if ack.Error != "" || ack.ContainerID == "" || ack.InvokerID != e.id || ack.Action.Rev != a.Rev {
		t.Fatalf("ack %+v", ack)
	}
	if n := e.containers(a); n != 1 {
		t.Fatalf("%d containers registered, want 1", n)
	}
	waitFor(t, 5*time.Second, "free memory reported", func() bool {
		i, ok := e.invokerInfo()
		return ok && i.Status == whisk.InvokerUp && i.UserMemory == 2048 && i.FreeMemory == 2048-256
	})

	cold := e.invoke(a, `{"name":"Bob"}`)
	if !cold.Response.Success || string(cold.Response.Result) != `{"greeting":"Hello Bob"}` {
		t.Fatalf("response %+v %s", cold.Response, cold.Response.Result)
	}
	logs := strings.Join(cold.Logs, "\n")
	if !strings.Contains(logs, "stdout: hello on stdout Bob") || !strings.Contains(logs, "stderr: hello on stderr Bob") || strings.Contains(logs, "XXX_THE_END") {
		t.Fatalf("logs %q", cold.Logs)
	}
	if cold.Namespace != "guest" || cold.Name != "hello" || cold.Subject != "guest" || cold.Duration != cold.End-cold.Start {
		t.Fatalf("record %+v", cold)
	}
	if _, ok := annotation(cold, whisk.AnnInitTime); !ok {
		t.Errorf("cold record without initTime: %v", cold.Annotations)
	}
	if tm, _ := annotation(cold, whisk.AnnTimings); !strings.Contains(tm, `"start":"cold"`) {
		t.Errorf("cold timings %s", tm)
	}
	if rec := e.record(cold.ActivationID); string(rec.Response.Result) != string(cold.Response.Result) {
		t.Errorf("stored %+v", rec)
	}

	warm := e.invoke(a, `{"name":"Ann"}`)
	if string(warm.Response.Result) != `{"greeting":"Hello Ann"}` {
		t.Fatalf("warm %s", warm.Response.Result)
	}
	if _, ok := annotation(warm, whisk.AnnInitTime); ok {
		t.Error("warm record has initTime")
	}
	if tm, _ := annotation(warm, whisk.AnnTimings); !strings.Contains(tm, `"start":"warm"`) {
		t.Errorf("warm timings %s", tm)
	}
	if strings.Contains(strings.Join(warm.Logs, "\n"), "Bob") || len(warm.Logs) != 2 {
		t.Errorf("warm logs %q", warm.Logs)
	}
	e.record(warm.ActivationID)

	// The next fetch says the container is warm and how long the last run took.
	waitFor(t, 5*time.Second, "a warm fetch", func() bool {
		all, _ := e.stub.fetchLog()
		last := all[len(all)-1]
		return last.Warm && last.Alive && last.ContainerID == ack.ContainerID && last.InvokerID == e.id && last.Rev == a.Rev
	})
}

func TestApplicationErrorKeepsContainer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{})
	a := e.putAction("apperr", "python:3.11", "def main(args):\n    return {'error': 'nope'}\n", whisk.Limits{})
	e.create(a)
	for range 2 {
		rec := e.invoke(a, "")
		if rec.Response.Status != "application error" || rec.StatusCode != whisk.StatusApplicationError || errorOf(rec) != "nope" {
			t.Fatalf("response %+v %s", rec.Response, rec.Response.Result)
		}
	}
	if n := e.containers(a); n != 1 {
		t.Fatalf("%d containers, want the same one still registered", n)
	}
}

func TestCrashDestroysContainer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{})
	a := e.putAction("crash", "python:3.11", "import os\ndef main(args):\n    print('about to die', flush=True)\n    os._exit(3)\n", whisk.Limits{})
	e.create(a)
	rec := e.invoke(a, "")
	if rec.Response.Status != "action developer error" || errorOf(rec) != whisk.MsgRunExited {
		t.Fatalf("response %+v %s", rec.Response, rec.Response.Result)
	}
	if !strings.Contains(strings.Join(rec.Logs, "\n"), "about to die") {
		t.Errorf("logs %q", rec.Logs)
	}
	e.expectGone(a)
}

// sleepyNative prints a line and then sleeps through its 300 ms limit. A
// native action, because its /init takes milliseconds: a cold python start
// on a loaded machine can pass 300 ms by itself, which would time out /init
// (the limit covers /init and /run together).
const sleepyNative = `#!/bin/bash
while read -r line; do
  echo sleeping
  sleep 60
  echo '{}' >&3
done
`

// A Python action that prints and then runs past its time limit keeps the
// lines it printed (its output is line-buffered; the container is killed
// with its log stream kept), and they are its own: the cold start's
// module output comes first.
func TestTimedOutPythonKeepsItsLines(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{})
	a := e.putAction("slowpy", "python:3.11", "import time\nprint('loaded')\ndef main(args):\n    print('before the sleep')\n    time.sleep(60)\n    return {}\n", whisk.Limits{Timeout: 4000})
	if ack := e.create(a); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	rec := e.invoke(a, "")
	if errorOf(rec) != whisk.MsgTimeLimit(4000, false) {
		t.Fatalf("response %+v %s", rec.Response, rec.Response.Result)
	}
	if len(rec.Logs) != 3 || !strings.HasSuffix(rec.Logs[0], "stdout: loaded") || !strings.HasSuffix(rec.Logs[1], "stdout: before the sleep") || !strings.HasSuffix(rec.Logs[2], "stderr: "+whisk.MsgLogsMaybeGone) {
		t.Errorf("logs %q", rec.Logs)
	}
}

func TestTimeoutDestroysContainer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{})
	a := e.putAction("slow", "native", sleepyNative, whisk.Limits{Timeout: 300})
	e.create(a)
	began := time.Now()
	rec := e.invoke(a, "")
	// Not after the action's 60 s sleep: the time limit ended it (half
	// the sleep leaves a busy machine room).
	if took := time.Since(began); took > 30*time.Second {
		t.Errorf("the timed-out activation completed after %v, as if the action's sleep ended it", took)
	}
	if rec.Response.Status != "action developer error" || errorOf(rec) != whisk.MsgTimeLimit(300, false) {
		t.Fatalf("response %+v %s", rec.Response, rec.Response.Result)
	}
	if v, _ := annotation(rec, whisk.AnnTimeout); v != "true" {
		t.Errorf("timeout annotation %s", v)
	}
	// The lines printed before the time limit are kept; the record says
	// that logs may be missing.
	if len(rec.Logs) != 2 || !strings.HasSuffix(rec.Logs[0], "stdout: sleeping") || !strings.HasSuffix(rec.Logs[1], "stderr: "+whisk.MsgLogsMaybeGone) {
		t.Errorf("logs %q", rec.Logs)
	}
	if rec.Duration < 300 || rec.Duration > 2000 {
		t.Errorf("duration %d", rec.Duration)
	}
	e.expectGone(a)
}

func TestMalformedResult(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{})
	a := e.putAction("garbage", "native", "#!/bin/bash\nwhile read -r l; do echo 'this is not json' >&3; done\n", whisk.Limits{})
	e.create(a)
	rec := e.invoke(a, "")
	if rec.Response.Status != "action developer error" || errorOf(rec) == "" {
		t.Fatalf("response %+v %s", rec.Response, rec.Response.Result)
	}
	e.expectGone(a)
}

func TestInitFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{})
	a := e.putAction("broken", "python:3.11", "def main(args)\n    return {}\n", whisk.Limits{})
	e.create(a)
	rec := e.invoke(a, "")
	if rec.Response.Status != "action developer error" || !strings.Contains(errorOf(rec), "SyntaxError") {
		t.Fatalf("response %+v %s", rec.Response, rec.Response.Result)
	}
	if _, ok := annotation(rec, whisk.AnnInitTime); !ok {
		t.Errorf("no initTime on a failed init")
	}
	if logs := strings.Join(rec.Logs, "\n"); !strings.Contains(logs, "stderr: ") || !strings.Contains(logs, "SyntaxError") {
		t.Errorf("the traceback is not in the logs: %q", rec.Logs)
	}
	e.expectGone(a)
}

func TestIdleContainerRemoved(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{IdleTimeout: 600 * time.Millisecond})
	a := e.putAction("idle", "python:3.11", "def main(args):\n    return {}\n", whisk.Limits{})
	ack := e.create(a)
	if rec := e.invoke(a, ""); !rec.Response.Success {
		t.Fatalf("%+v", rec.Response)
	}
	e.expectGone(a)
	_, goodbyes := e.stub.fetchLog()
	if len(goodbyes) != 1 || goodbyes[0].ContainerID != ack.ContainerID {
		t.Fatalf("goodbye fetches %+v", goodbyes)
	}
}

// expectGone waits until the action's container is deregistered, said
// goodbye, and its memory is back.
func (e *env) expectGone(a whisk.Action) {
	e.t.Helper()
	waitFor(e.t, 10*time.Second, "container deregistered and memory released", func() bool {
		i, _ := e.invokerInfo()
		_, goodbyes := e.stub.fetchLog()
		return e.containers(a) == 0 && len(goodbyes) > 0 && e.inv.FreeMemoryMB() == 2048 && i.FreeMemory == 2048
	})
}

func TestCreationFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{UserMemoryMB: 300})
	a := e.putAction("big", "python:3.11", "def main(args):\n    return {}\n", whisk.Limits{Memory: 512})
	if ack := e.create(a); ack.Error != "not enough memory" || !ack.Retryable || ack.Developer {
		t.Errorf("no memory: ack %+v", ack)
	}

	b := e.putAction("moved", "python:3.11", "def main(args):\n    return {}\n", whisk.Limits{})
	ghost := b
	ghost.Name = "ghost"
	if ack := e.create(ghost); ack.Error == "" || !ack.Developer {
		t.Errorf("missing action: ack %+v", ack)
	}
	odd, err := e.store.PutAction(e.ctx, whisk.Action{Namespace: "guest", Name: "odd", Exec: whisk.Exec{Kind: "cobol:85", Code: "x"},
		Limits: whisk.Limits{Timeout: 1000, Memory: 128, Logs: 1, Concurrency: 1}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ack := e.create(odd); ack.Error == "" || !ack.Developer {
		t.Errorf("unknown kind: ack %+v", ack)
	}
	if got := e.inv.FreeMemoryMB(); got != 300 {
		t.Errorf("free memory %d after failed creations, want 300", got)
	}

	// One fits. The second does not fit beside it: it is refused, or,
	// once the first has sat idle long enough to be reclaimed (which on a
	// busy machine may happen before the second request arrives), it
	// replaces the first. Never both at once: the memory is never
	// overcommitted.
	if ack := e.create(b); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	ack := e.create(b)
	if ack.Error != "" && ack.Error != "not enough memory" {
		t.Fatalf("ack %+v", ack)
	}
	if got := e.inv.FreeMemoryMB(); got != 300-256 {
		t.Errorf("free memory %d with one 256 MB container, want %d (ack %+v)", got, 300-256, ack)
	}
}

// TestCreationForChangedAction: a creation request for a revision the
// action no longer has is not the developer's fault: the ack is retryable
// and carries the action as stored, so the queue can adopt its revision.
func TestCreationForChangedAction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{})
	old := e.putAction("moved", "python:3.11", "def main(args):\n    return {}\n", whisk.Limits{})
	updated := old
	updated.Exec.Code = "def main(args):\n    return {'v': 2}\n"
	updated.Limits.Memory = 128
	updated, err := e.store.PutAction(e.ctx, updated, old.Rev)
	if err != nil {
		t.Fatal(err)
	}
	if updated.Rev == old.Rev {
		t.Fatal("the update kept the revision")
	}
	ack := e.create(old)
	if ack.Error == "" || ack.Developer || !ack.Retryable || ack.ContainerID != "" {
		t.Fatalf("stale revision: ack %+v, want a retryable, non-developer error", ack)
	}
	if ack.Action.Rev != updated.Rev || ack.Action.Limits.Memory != 128 || ack.Action.FQN() != old.FQN() {
		t.Errorf("stale revision: ack carries %+v, want the stored action at revision %d", ack.Action, updated.Rev)
	}
	if got := e.inv.FreeMemoryMB(); got != 2048 {
		t.Errorf("free memory %d after the refused creation", got)
	}
}

func TestShutdownFailsRunningActivation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{ShutdownGrace: 300 * time.Millisecond})
	a := e.putAction("long", "python:3.11", "import time\ndef main(args):\n    time.sleep(args.get('sleep', 0))\n    return {'slept': True}\n", whisk.Limits{})
	e.create(a)
	e.create(a) // a second, idle container
	if rec := e.invoke(a, ""); !rec.Response.Success {
		t.Fatalf("%+v", rec.Response)
	}
	m := e.enqueue(a, `{"sleep": 60}`)
	waitFor(t, 5*time.Second, "the activation taken", func() bool { return len(e.stub.queue) == 0 })
	time.Sleep(200 * time.Millisecond) // let /run begin
	began := time.Now()
	if err := e.shutdown(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Not after the action's 60 s sleep: the grace ended it (half the
	// sleep leaves a busy machine room).
	if took := time.Since(began); took > 30*time.Second {
		t.Errorf("shutdown took %v, as if it waited for the action", took)
	}
	rec := e.completion(time.Second)
	if rec.ActivationID != m.ActivationID || rec.Response.Status != "whisk internal error" || errorOf(rec) != whisk.MsgInvokerLost {
		t.Fatalf("record %+v %s", rec.Response, rec.Response.Result)
	}
	// Run returned: the record is stored, every container is gone.
	if _, err := e.store.GetActivation(e.ctx, "guest", m.ActivationID); err != nil {
		t.Errorf("record not stored before Run returned: %v", err)
	}
	if n := e.containers(a); n != 0 {
		t.Errorf("%d containers still registered", n)
	}
	if got := e.inv.FreeMemoryMB(); got != 2048 {
		t.Errorf("free memory %d", got)
	}
	if i, ok := e.invokerInfo(); ok && i.Status != whisk.InvokerDown {
		t.Errorf("registration after shutdown %+v", i)
	}
}

func TestProxyFollowsLeaderAndStopsWithoutOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{LeaderRetry: 700 * time.Millisecond})
	a := e.putAction("moving", "python:3.11", "def main(args):\n    return {'ok': True}\n", whisk.Limits{})
	e.create(a)
	if rec := e.invoke(a, ""); !rec.Response.Success {
		t.Fatalf("%+v", rec.Response)
	}

	// The queue moves to another scheduler: the first answers noQueue, the
	// leader key names the second.
	second := newStub()
	addr2 := serveStub(t, second)
	sess, err := cluster.NewSession(e.ctx, etcd, 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(e.ctx)
	if won, _, err := sess.ElectLeader(e.ctx, a.FQN(), whisk.LeaderInfo{SchedulerID: "other", Addr: addr2}); err != nil || !won {
		t.Fatalf("elect: %v %v", won, err)
	}
	e.stub.setNoQueue(true)
	m := e.enqueueAt(second, a)
	rec := e.completion(10 * time.Second)
	if rec.ActivationID != m.ActivationID || !rec.Response.Success {
		t.Fatalf("record %+v", rec)
	}
	if _, ok := annotation(rec, whisk.AnnInitTime); ok {
		t.Error("the same warm container should have run it")
	}

	// The leader goes away for good: the container is given up.
	if err := sess.ResignLeader(e.ctx, a.FQN()); err != nil {
		t.Fatal(err)
	}
	second.setNoQueue(true)
	waitFor(t, 10*time.Second, "container given up", func() bool {
		return e.containers(a) == 0 && e.inv.FreeMemoryMB() == 2048
	})
}

func TestMismatchStopsContainer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{})
	a := e.putAction("old", "python:3.11", "def main(args):\n    return {}\n", whisk.Limits{})
	e.create(a)
	e.stub.mu.Lock()
	e.stub.rev = a.Rev + 1
	e.stub.mu.Unlock()
	e.expectGone(a)
}

func (e *env) enqueueAt(s *stubScheduler, a whisk.Action) *whisk.ActivationMessage {
	orig := e.stub
	e.stub = s
	defer func() { e.stub = orig }()
	return e.enqueue(a, "")
}

// TestLogLimit: an action that writes more than its log limit is not
// blocked by its own output; its logs are cut with OpenWhisk's line, and
// the next activation's logs start clean.
func TestLogLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{})
	a := e.putAction("chatty", "python:3.11", "def main(args):\n    for i in range(30000):\n        print('line %05d' % i + 'x' * 60)\n    return {'done': True}\n", whisk.Limits{Logs: 1})
	e.create(a)
	for round := range 2 {
		rec := e.invoke(a, "")
		if string(rec.Response.Result) != `{"done":true}` || len(rec.Logs) < 100 {
			t.Fatalf("round %d: result %s, %d log lines", round, rec.Response.Result, len(rec.Logs))
		}
		if last := rec.Logs[len(rec.Logs)-1]; !strings.Contains(last, whisk.MsgLogsTruncated(1<<20)) {
			t.Fatalf("round %d: last log line %q", round, last)
		}
		if !strings.Contains(rec.Logs[0], "stdout: line 00000") {
			t.Fatalf("round %d: first log line %q", round, rec.Logs[0])
		}
	}
}
