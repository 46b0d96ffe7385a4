package invoker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/whisk"
)

func TestConnPoolSharesOneConnectionPerAddress(t *testing.T) {
	p := newConnPool(nil, insecure.NewCredentials())
	a1, err := p.acquire("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := p.acquire("127.0.0.1:1")
	b, _ := p.acquire("127.0.0.1:2")
	if a1 != a2 || a1 == b || p.size() != 2 {
		t.Fatalf("clients %p %p %p, %d connections", a1, a2, b, p.size())
	}
	p.release("127.0.0.1:1")
	if p.size() != 2 {
		t.Fatal("closed while still used")
	}
	p.release("127.0.0.1:1")
	if p.size() != 1 {
		t.Fatal("not closed after the last release")
	}
	p.closeAll()
	if p.size() != 0 {
		t.Fatal("closeAll left connections")
	}
}

// flakyStore fails the first writes of each record.
type flakyStore struct {
	mu       sync.Mutex
	failures int
	stored   map[whisk.ActivationID]bool
}

func (s *flakyStore) GetAction(context.Context, string, string) (whisk.Action, error) {
	return whisk.Action{}, errors.New("unused")
}

func (s *flakyStore) PutActivation(_ context.Context, a whisk.Activation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures > 0 {
		s.failures--
		return errors.New("database is locked")
	}
	s.stored[a.ActivationID] = true
	return nil
}

func TestRecordWriterRetriesAndFlushes(t *testing.T) {
	st := &flakyStore{failures: 3, stored: map[whisk.ActivationID]bool{}}
	w := newRecordWriter(st, discardLog())
	done := make(chan struct{})
	go func() { defer close(done); w.run() }()
	for i := range 20 {
		w.put(whisk.Activation{ActivationID: whisk.ActivationID(rune('a' + i))})
	}
	w.close()
	<-done
	w.put(whisk.Activation{ActivationID: "late"}) // after close: written synchronously
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.stored) != 21 {
		t.Fatalf("%d records stored, want 21", len(st.stored))
	}
}

// downStore is a store that is unreachable for its first failures writes
// (whisk.Unavailable, as store/postgres answers while the server is down),
// or fails them with err when set.
type downStore struct {
	flakyStore
	err   error
	tries int
}

func (s *downStore) PutActivation(ctx context.Context, a whisk.Activation) error {
	s.mu.Lock()
	s.tries++
	if s.failures > 0 {
		s.failures--
		s.mu.Unlock()
		if s.err != nil {
			return s.err
		}
		return whisk.E("test.PutActivation", whisk.Unavailable, "", errors.New("connection refused"))
	}
	defer s.mu.Unlock()
	s.stored[a.ActivationID] = true
	return nil
}

// A store outage delays records, however long it lasts (here far more
// attempts than recordAttempts), and loses none; other errors are tried
// recordAttempts times.
func TestRecordWriterOutlastsStoreOutage(t *testing.T) {
	for _, c := range []struct {
		name    string
		err     error
		stored  int
		atLeast int
	}{
		{"unavailable", nil, 3, 3*recordAttempts + 3},
		{"timeout", whisk.E("test", whisk.Timeout, "", context.DeadlineExceeded), 3, 3*recordAttempts + 3},
		{"other errors give up", errors.New("disk on fire"), 0, 3 * recordAttempts},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := &downStore{flakyStore: flakyStore{failures: 3 * recordAttempts, stored: map[whisk.ActivationID]bool{}}, err: c.err}
			w := newRecordWriter(st, discardLog())
			w.backoff, w.maxBackoff = time.Millisecond, 2*time.Millisecond
			done := make(chan struct{})
			go func() { defer close(done); w.run() }()
			for _, id := range []whisk.ActivationID{"a", "b", "c"} {
				w.put(whisk.Activation{ActivationID: id})
			}
			w.close()
			<-done
			st.mu.Lock()
			defer st.mu.Unlock()
			if len(st.stored) != c.stored || st.tries < c.atLeast {
				t.Fatalf("%d records stored after %d writes, want %d after at least %d", len(st.stored), st.tries, c.stored, c.atLeast)
			}
		})
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// deadContainer is a container that has exited.
type deadContainer struct {
	done chan struct{}
	exit container.ExitInfo
}

func newDead(oom bool) *deadContainer {
	d := &deadContainer{done: make(chan struct{}), exit: container.ExitInfo{Code: 137, OOMKilled: oom}}
	close(d.done)
	return d
}

func (d *deadContainer) ID() string                       { return "dead" }
func (d *deadContainer) Addr() string                     { return "127.0.0.1:1" }
func (d *deadContainer) Logs() <-chan container.LogLine   { return nil }
func (d *deadContainer) Done() <-chan struct{}            { return d.done }
func (d *deadContainer) Exit() container.ExitInfo         { return d.exit }
func (d *deadContainer) Remove(ctx context.Context) error { return nil }
func (d *deadContainer) Kill(ctx context.Context) error   { return nil }
func (d *deadContainer) OOMKilled(context.Context) bool   { return false }

func TestCallFailedMapping(t *testing.T) {
	inv := &Invoker{cfg: Config{MaxResult: 1 << 20}, hard: context.Background()}
	transport := &container.TransportError{Op: "run", Err: errors.New("connection reset")}
	cases := []struct {
		name    string
		oom     bool
		err     error
		expired bool
		resp    container.Response
		init    bool
		code    int
		msg     string
	}{
		{"oom during run", true, transport, false, container.Response{}, false, whisk.StatusDeveloperError, whisk.MsgOOM},
		{"exit during run", false, transport, false, container.Response{}, false, whisk.StatusDeveloperError, whisk.MsgRunExited},
		{"exit during init", false, transport, false, container.Response{}, true, whisk.StatusDeveloperError, whisk.MsgInitExited},
		{"time limit", false, context.DeadlineExceeded, true, container.Response{}, false, whisk.StatusDeveloperError, whisk.MsgTimeLimit(300, false)},
		{"time limit in init", false, context.DeadlineExceeded, true, container.Response{}, true, whisk.StatusDeveloperError, whisk.MsgTimeLimit(300, true)},
		{"action process exited", false, nil, false, container.Response{Status: 502, Body: []byte(`{"error":"command exited"}`)}, false, whisk.StatusDeveloperError, whisk.MsgRunExited},
		{"action process killed for memory", false, nil, false, container.Response{Status: 502, Body: []byte(`{"error":"command exited","oom":true}`)}, false, whisk.StatusDeveloperError, whisk.MsgOOM},
		{"init without error field", false, nil, false, container.Response{Status: 500, Body: []byte(`Internal Server Error`)}, true, whisk.StatusDeveloperError, whisk.MsgInitFailed("Internal Server Error")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ctr container.Container = newDead(c.oom)
			if c.err == nil || c.expired {
				ctr = &deadContainer{done: make(chan struct{})} // still running
			}
			p := &proxy{inv: inv, ctr: ctr}
			o := p.callFailed(c.err, c.expired, c.resp, c.init, 300*time.Millisecond)
			if o.code != c.code || errorText(o.result) != c.msg || !o.destroy || o.timedOut != c.expired {
				t.Fatalf("outcome %+v %s, want %d %q", o, o.result, c.code, c.msg)
			}
		})
	}

	// Once the shutdown grace has passed, a broken call is the invoker's fault.
	hard, cancel := context.WithCancel(context.Background())
	cancel()
	p := &proxy{inv: &Invoker{hard: hard}, ctr: newDead(false)}
	o := p.callFailed(context.Canceled, false, container.Response{}, false, time.Second)
	if o.code != whisk.StatusWhiskError || errorText(o.result) != whisk.MsgInvokerLost {
		t.Fatalf("%+v %s", o, o.result)
	}
}

func TestWatermark(t *testing.T) {
	var w watermark
	if _, ok := w.done(); ok {
		t.Fatal("done before anything was handled")
	}
	for _, off := range []int64{5, 6, 7, 8} {
		if !w.add(off) {
			t.Fatalf("add(%d) refused", off)
		}
	}
	if w.add(6) || w.add(8) {
		t.Fatal("a redelivered offset was added again")
	}
	w.finish(7)
	if _, ok := w.done(); ok {
		t.Fatal("watermark moved past unhandled 5 and 6")
	}
	w.finish(5)
	if off, ok := w.done(); !ok || off != 5 {
		t.Fatalf("done = %d, %v; want 5", off, ok)
	}
	w.finish(6)
	if off, _ := w.done(); off != 7 {
		t.Fatalf("done = %d; want 7 (6 and 7 handled)", off)
	}
	w.add(9)
	w.finish(9)
	if off, _ := w.done(); off != 7 {
		t.Fatalf("done = %d; want 7 (8 in flight)", off)
	}
	w.finish(8)
	if off, _ := w.done(); off != 9 {
		t.Fatalf("done = %d; want 9", off)
	}
}

// TestLogPumpKeepsCursorExact: a collection that ends before its sentinels
// leaves lines owed; the pump drops what comes between collections but
// keeps the sentinels, so the next collection gets exactly its own lines.
func TestLogPumpKeepsCursorExact(t *testing.T) {
	in := make(chan container.LogLine, 100)
	lp := startLogPump(in)
	defer lp.stop()
	var cur container.LogCursor
	line := func(stream, text string) { in <- container.LogLine{Time: time.Now(), Stream: stream, Text: text} }
	// collect runs a collection; call writes the activation's lines after
	// it began, as a call's output comes after the proxy starts collecting.
	collect := func(wait time.Duration, call func()) ([]string, bool) {
		lc := lp.startCollection(context.Background(), &cur, 1<<20)
		call()
		return lc.waitLogs(wait)
	}
	drained := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(in) > 0 {
			if time.Now().After(deadline) {
				t.Fatal("the pump does not read between collections")
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
	}

	logs, complete := collect(200*time.Millisecond, func() { line(container.Stdout, "first") })
	if complete || len(logs) != 1 || !strings.HasSuffix(logs[0], "stdout: first") {
		t.Fatalf("first collection: %q, complete %v", logs, complete)
	}
	// The rest of the first activation, then output between activations.
	line(container.Stdout, "first, late")
	line(container.Stdout, container.Sentinel)
	line(container.Stderr, "first, late on stderr")
	line(container.Stderr, container.Sentinel)
	for i := range 50 {
		line(container.Stdout, fmt.Sprintf("background %d", i))
	}
	drained()

	logs, complete = collect(5*time.Second, func() {
		line(container.Stderr, "second")
		line(container.Stdout, container.Sentinel)
		line(container.Stderr, container.Sentinel)
	})
	if !complete || len(logs) != 1 || !strings.HasSuffix(logs[0], "stderr: second") {
		t.Fatalf("second collection: %q, complete %v", logs, complete)
	}

	// The stream ends between collections: the next one learns it.
	line(container.Stdout, "background")
	close(in)
	drained()
	if logs, complete := collect(5*time.Second, func() {}); complete || len(logs) != 0 {
		t.Fatalf("after the end: %q, complete %v", logs, complete)
	}
}

// TestLogPumpHoldsSentinelsAfterCompletion: the next activation's
// sentinels may come after a collection got both of its own but before the
// proxy ended it (waitLogs); the pump holds them for the next collection,
// and drops the lines between them.
func TestLogPumpHoldsSentinelsAfterCompletion(t *testing.T) {
	in := make(chan container.LogLine, 100)
	lp := startLogPump(in)
	defer lp.stop()
	var cur container.LogCursor
	line := func(stream, text string) { in <- container.LogLine{Time: time.Now(), Stream: stream, Text: text} }

	lc := lp.startCollection(context.Background(), &cur, 1<<20)
	line(container.Stdout, "mine")
	line(container.Stdout, container.Sentinel)
	line(container.Stderr, container.Sentinel)
	select {
	case <-lc.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the collection did not complete")
	}
	// Before waitLogs: a stray line and a later activation's sentinels.
	line(container.Stdout, "stray")
	line(container.Stdout, container.Sentinel)
	line(container.Stderr, container.Sentinel)
	deadline := time.Now().Add(5 * time.Second)
	for {
		lp.mu.Lock()
		n := len(lp.held)
		lp.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("held %d sentinels, want 2", n)
		}
		time.Sleep(time.Millisecond)
	}
	logs, complete := lc.waitLogs(time.Second)
	if !complete || len(logs) != 1 || !strings.HasSuffix(logs[0], "stdout: mine") {
		t.Fatalf("first collection: %q, complete %v", logs, complete)
	}
	// The held sentinels complete the next collection at once, without
	// the stray line.
	lc = lp.startCollection(context.Background(), &cur, 1<<20)
	if logs, complete := lc.waitLogs(5 * time.Second); !complete || len(logs) != 0 {
		t.Fatalf("second collection: %q, complete %v", logs, complete)
	}
}
