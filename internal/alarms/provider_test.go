package alarms

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/store/sqlite"
	"github.com/eddy-faas/eddy/internal/whisk"
)

func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// env is a real SQLite store and a real embedded etcd.
type env struct {
	st   *sqlite.Store
	etcd *cluster.Client
	docs StoreDocs
	user whisk.Identity
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "eddy.db"), testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e, err := cluster.StartEmbedded(ctx, cluster.EmbedConfig{Dir: filepath.Join(dir, "etcd"), Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	c, err := cluster.Dial(ctx, e.Endpoints(), testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	user := whisk.Identity{Subject: "alice", Namespace: "alice", UUID: "u-1", Key: "k-1"}
	if err := st.PutIdentity(ctx, user); err != nil {
		t.Fatal(err)
	}
	return &env{st: st, etcd: c, docs: StoreDocs{S: st}, user: user}
}

// session grants a lease and keeps it alive until stop (a process that
// dies stops renewing it; its keys go when it expires).
func (e *env) session(t *testing.T, ttl time.Duration) (*cluster.Session, func()) {
	t.Helper()
	s, err := cluster.NewSession(context.Background(), e.etcd, ttl, testLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return s, stop
}

// fire is one call of the recording firer: which provider fired which
// tick (the alarm's pending tick when the fire came).
type fire struct {
	by   string
	tick int64
	at   time.Time
}

// recorder is the test's end of the fire path: it records every fire
// with the tick being fired, and writes the trigger record as the real
// fire path does. die, when set, is called for a fire and may end the
// provider ("a kill -9" after or before the fire).
type recorder struct {
	e  *env
	mu sync.Mutex
	fs []fire
}

type firer struct {
	r   *recorder
	by  string
	die func(n int) (fired bool, kill bool) // n counts this firer's calls from 1
	n   int
	ctx context.CancelFunc
}

func (f *firer) Fire(ctx context.Context, caller whisk.Identity, ns, trigger string, payload json.RawMessage, _ map[string]string, id whisk.ActivationID) (whisk.ActivationID, error) {
	f.n++
	fired, kill := true, false
	if f.die != nil {
		fired, kill = f.die(f.n)
	}
	if kill {
		f.ctx()
	}
	if !fired {
		return "", context.Canceled
	}
	ctx = context.WithoutCancel(ctx) // a fire that went through is recorded even as its provider dies
	st, err := f.r.e.docs.Get(ctx, whisk.FQN{Namespace: ns, Name: trigger})
	if err != nil {
		return "", err
	}
	if id == "" {
		id = whisk.NewActivationID()
	}
	if err := f.r.e.st.PutActivation(ctx, whisk.Activation{
		Namespace: caller.Namespace, Name: trigger, Subject: caller.Subject, ActivationID: id,
		Start: time.Now().UnixMilli(), Response: whisk.NewResponse(whisk.StatusSuccess, payload),
	}); err != nil {
		return "", err
	}
	f.r.mu.Lock()
	f.r.fs = append(f.r.fs, fire{by: f.by, tick: st.Alarm.Pending, at: time.Now()})
	f.r.mu.Unlock()
	return id, nil
}

func (r *recorder) fires() []fire {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]fire(nil), r.fs...)
}

// keepShards ignores releases: a killed process releases nothing.
type keepShards struct{ *cluster.Session }

func (keepShards) ReleaseAlarmShard(context.Context, int) error { return nil }

func (e *env) provider(t *testing.T, id string, shards Shards, f *firer) (*Provider, context.Context) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f.ctx = cancel
	p, err := New(Config{ID: id, Shards: 4, Poll: 100 * time.Millisecond, PendingGrace: 500 * time.Millisecond},
		Deps{Docs: e.docs, Identities: e.st, Records: e.st, Firer: f, Deleter: e.docs, Shards: shards, Log: testLog().With("provider", id)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p, ctx
}

func (e *env) createAlarm(t *testing.T, name string, p Params) {
	t.Helper()
	trigger := whisk.FQN{Namespace: e.user.Namespace, Name: name}
	a, err := newAlarm(p, trigger, e.user.AuthKey(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.docs.Put(context.Background(), *a, 0); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkOnce asserts that the ticks fired are exactly every tick of a
// per-second schedule from the first to the last, once each.
func checkOnce(t *testing.T, fs []fire) (late int) {
	t.Helper()
	seen := map[int64]int{}
	lo, hi := int64(0), int64(0)
	for _, f := range fs {
		seen[f.tick]++
		if lo == 0 || f.tick < lo {
			lo = f.tick
		}
		hi = max(hi, f.tick)
		if f.at.Sub(time.UnixMilli(f.tick)) > time.Second {
			late++
		}
	}
	for tk := lo; tk <= hi; tk += 1000 {
		if seen[tk] != 1 {
			t.Errorf("tick %s fired %d times", time.UnixMilli(tk).UTC().Format(time.StampMilli), seen[tk])
		}
	}
	if n := int((hi-lo)/1000) + 1; len(fs) != n {
		t.Errorf("%d fires for %d ticks", len(fs), n)
	}
	return late
}

// Two providers; the owner dies after it claimed a tick and before it
// fired it. The other takes the shards over when the lease expires, fires
// the pending tick and the ticks missed meanwhile late, and goes on: every
// tick once.
func TestProviderFailoverFiresEveryTickOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fired bool // the dying fire went through before the death
	}{{"dies before the fire", false}, {"dies after the fire", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.createAlarm(t, "every-second", params("cron", `"* * * * * *"`, "trigger_payload", `"tick"`))
			rec := &recorder{e: e}

			sa, stopA := e.session(t, 2*time.Second)
			fa := &firer{r: rec, by: "a", die: func(n int) (bool, bool) {
				if n == 4 {
					return tc.fired, true
				}
				return true, false
			}}
			_, actx := e.provider(t, "a", keepShards{sa}, fa)
			waitFor(t, "a owns every shard", func() bool {
				o, _ := e.etcd.AlarmShardOwners(context.Background())
				return len(o) == 4
			})
			sb, _ := e.session(t, 2*time.Second)
			pb, _ := e.provider(t, "b", sb, &firer{r: rec, by: "b"})

			<-actx.Done() // a died at its 4th fire
			stopA()       // and stops renewing its lease
			waitFor(t, "b fires 5 ticks", func() bool { return pb.Fired() >= 5 })

			fs := rec.fires()
			byA := 0
			for _, f := range fs {
				if f.by == "a" {
					byA++
				}
			}
			if want := 3 + map[bool]int{true: 1, false: 0}[tc.fired]; byA != want {
				t.Errorf("a fired %d ticks, want %d", byA, want)
			}
			late := checkOnce(t, fs)
			for _, f := range fs {
				t.Logf("tick %s fired by %s %v after it", time.UnixMilli(f.tick).UTC().Format(time.StampMilli), f.by, f.at.Sub(time.UnixMilli(f.tick)).Round(time.Millisecond))
			}
			st, err := e.docs.Get(context.Background(), whisk.FQN{Namespace: "alice", Name: "every-second"})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d fires (%d late), a: %d; stored: fired %d, last tick %s", len(fs), late, byA, st.Alarm.Fired, time.UnixMilli(st.Alarm.LastTick).UTC().Format(time.StampMilli))
		})
	}
}

// scripted answers fires from a script of errors (nil: accepted), then
// accepts; it records the ticks fired.
type scripted struct {
	e      *env
	mu     sync.Mutex
	script []error
	calls  int
	ticks  []int64
}

func (s *scripted) Fire(ctx context.Context, caller whisk.Identity, ns, trigger string, _ json.RawMessage, _ map[string]string, _ whisk.ActivationID) (whisk.ActivationID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.script) > 0 {
		err := s.script[0]
		s.script = s.script[1:]
		if err != nil {
			return "", err
		}
	}
	st, err := s.e.docs.Get(ctx, whisk.FQN{Namespace: ns, Name: trigger})
	if err != nil {
		return "", err
	}
	s.ticks = append(s.ticks, st.Alarm.Pending)
	return whisk.NewActivationID(), nil
}

func (s *scripted) state() (int, []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, append([]int64(nil), s.ticks...)
}

func TestProviderFireSemantics(t *testing.T) {
	notFound := whisk.Errorf(whisk.NotFound, "The requested resource does not exist.")
	unavailable := whisk.Errorf(whisk.Unavailable, "down")
	conflict := whisk.Errorf(whisk.Conflict, "busy")
	throttled := whisk.Errorf(whisk.Throttled, "Too many requests in the last minute (count: 61, allowed: 60).")
	for _, tc := range []struct {
		name       string
		retries    int
		script     []error
		wantCalls  int    // fires tried until the alarm settles
		wantFired  int    // fires accepted
		wantReason string // "" = still active
	}{
		{"404 disables", 3, []error{notFound}, 1, 0, "Trigger automatically disabled: Received a 404 status code when firing the trigger"},
		{"503 and 409 are retried", 3, []error{unavailable, conflict, unavailable}, 4, 1, ""},
		{"retries run out: the tick is given up, the alarm goes on", 3, []error{unavailable, unavailable, unavailable, unavailable}, 5, 1, ""},
		{"429 on every retry disables", 1, []error{throttled, throttled}, 2, 0, "Automatically disabled after continuously receiving a 429 status code when firing the trigger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			name := "t"
			trigger := whisk.FQN{Namespace: "alice", Name: name}
			e.createAlarm(t, name, params("cron", `"* * * * * *"`))
			s, _ := e.session(t, 5*time.Second)
			f := &scripted{e: e, script: tc.script}
			ctx, cancel := context.WithCancel(context.Background())
			p, err := New(Config{ID: "p", Shards: 2, Poll: 50 * time.Millisecond, Retries: tc.retries, RetryDelay: 10 * time.Millisecond},
				Deps{Docs: e.docs, Identities: e.st, Records: e.st, Firer: f, Deleter: e.docs, Shards: s, Log: testLog()})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { defer close(done); _ = p.Run(ctx) }()
			defer func() { cancel(); <-done }()
			waitFor(t, "the script played out", func() bool {
				calls, ticks := f.state()
				if tc.wantReason != "" {
					st, err := e.docs.Get(context.Background(), trigger)
					return err == nil && !st.Alarm.Status.Active
				}
				return calls >= tc.wantCalls && len(ticks) >= tc.wantFired
			})
			st, err := e.docs.Get(context.Background(), trigger)
			if err != nil {
				t.Fatal(err)
			}
			a := st.Alarm
			if tc.wantReason != "" {
				if a.Status.Active || a.Status.Reason == nil || a.Status.Reason.Message != tc.wantReason || a.Status.Reason.Kind != "AUTO" {
					t.Fatalf("status %+v %+v, want disabled: %s", a.Status, a.Status.Reason, tc.wantReason)
				}
				if calls, _ := f.state(); calls != tc.wantCalls {
					t.Errorf("%d fires tried, want %d", calls, tc.wantCalls)
				}
				return
			}
			if !a.Status.Active {
				t.Fatalf("disabled: %+v", a.Status.Reason)
			}
			_, ticks := f.state()
			seen := map[int64]bool{}
			for _, tk := range ticks {
				if seen[tk] {
					t.Errorf("tick %d fired twice", tk)
				}
				seen[tk] = true
			}
		})
	}
}

// A once alarm with deleteAfterFire rules deletes its trigger and the
// trigger's rules after the fire; one that is not due keeps them.
func TestProviderOnceDeleteAfterFire(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.trigger(t, "alice", "once")
	rules := map[string]whisk.TriggerRule{"alice/r": {Action: whisk.EntityPath{Path: "alice", Name: "a"}, Status: whisk.RuleActive}}
	te, err := e.st.GetEntity(ctx, whisk.EntityTrigger, "alice", "once")
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(whisk.Trigger{Namespace: "alice", Name: "once", Version: "0.0.1", Rules: rules})
	te.Doc = doc
	if _, err := e.st.PutEntity(ctx, te, te.Rev); err != nil {
		t.Fatal(err)
	}
	rdoc, _ := json.Marshal(whisk.Rule{Namespace: "alice", Name: "r", Trigger: whisk.EntityPath{Path: "alice", Name: "once"}, Action: whisk.EntityPath{Path: "alice", Name: "a"}})
	if _, err := e.st.PutEntity(ctx, whisk.Entity{Kind: whisk.EntityRule, Namespace: "alice", Name: "r", Doc: rdoc}, 0); err != nil {
		t.Fatal(err)
	}
	e.createAlarm(t, "once", params("fireOnce", "true", "date", ms(time.Now().Add(time.Second)), "deleteAfterFire", `"rules"`))
	s, _ := e.session(t, 5*time.Second)
	p, _ := e.provider(t, "p", s, &firer{r: &recorder{e: e}, by: "p"})
	waitFor(t, "the trigger and its rule deleted", func() bool {
		_, terr := e.st.GetEntity(ctx, whisk.EntityTrigger, "alice", "once")
		_, rerr := e.st.GetEntity(ctx, whisk.EntityRule, "alice", "r")
		return whisk.KindOf(terr) == whisk.NotFound && whisk.KindOf(rerr) == whisk.NotFound
	})
	if n := p.Fired(); n != 1 {
		t.Errorf("fired %d times, want 1", n)
	}
	if _, err := e.docs.Get(ctx, whisk.FQN{Namespace: "alice", Name: "once"}); whisk.KindOf(err) != whisk.NotFound {
		t.Errorf("alarm document after deleteAfterFire: %v", err)
	}
}
