package cached

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/store/sqlite"
	"github.com/eddy-faas/eddy/internal/store/storetest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "eddy.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The cache keeps the store contract, with and without cached misses.
func TestContract(t *testing.T) {
	for _, neg := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprintf("negativeTTL=%v", neg), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				s := New(openSQLite(t), Config{NegativeTTL: neg})
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

// counting counts the reads that reach the inner store; block, when set,
// holds GetAction until it is closed.
type counting struct {
	store.Store
	idReads, actReads atomic.Int64
	block             chan struct{}
	entered           chan struct{}
	fail              error
	hang              bool // reads wait for their context to end (a hung server)
}

func (c *counting) IdentityByUUID(ctx context.Context, uuid string) (whisk.Identity, error) {
	c.idReads.Add(1)
	if c.hang {
		<-ctx.Done()
		return whisk.Identity{}, ctx.Err()
	}
	if c.fail != nil {
		return whisk.Identity{}, c.fail
	}
	return c.Store.IdentityByUUID(ctx, uuid)
}

func (c *counting) GetAction(ctx context.Context, namespace, name string) (whisk.Action, error) {
	c.actReads.Add(1)
	if c.hang {
		<-ctx.Done()
		return whisk.Action{}, ctx.Err()
	}
	if c.fail != nil {
		return whisk.Action{}, c.fail
	}
	block, entered := c.block, c.entered
	a, err := c.Store.GetAction(ctx, namespace, name)
	if block != nil {
		entered <- struct{}{}
		<-block
	}
	return a, err
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func setup(t *testing.T, cfg Config) (*Store, *counting, *clock) {
	t.Helper()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	inner := &counting{Store: openSQLite(t)}
	cfg.Now = clk.now
	s := New(inner, cfg)
	t.Cleanup(func() { s.Close() })
	return s, inner, clk
}

func action(name, code string) whisk.Action {
	return whisk.Action{Namespace: "ns", Name: name, Exec: whisk.Exec{Kind: "python:3", Code: code},
		Parameters: whisk.Params{{Key: "p", Value: json.RawMessage(`"v"`)}}}
}

func mustGet(t *testing.T, s store.Store, name string) whisk.Action {
	t.Helper()
	a, err := s.GetAction(t.Context(), "ns", name)
	if err != nil {
		t.Fatalf("GetAction(%s): %v", name, err)
	}
	return a
}

func TestActionHitsAndTTL(t *testing.T) {
	s, inner, clk := setup(t, Config{TTL: 2 * time.Second})
	if _, err := s.PutAction(t.Context(), action("a", "v1"), 0); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if a := mustGet(t, s, "a"); a.Exec.Code != "v1" || a.Rev != 1 {
			t.Fatalf("got %q rev %d", a.Exec.Code, a.Rev)
		}
	}
	if n := inner.actReads.Load(); n != 1 {
		t.Fatalf("inner reads = %d, want 1 (then hits)", n)
	}
	// Another process writes: seen only after the TTL.
	if _, err := inner.Store.PutAction(t.Context(), action("a", "v2"), 1); err != nil {
		t.Fatal(err)
	}
	clk.advance(1999 * time.Millisecond)
	if a := mustGet(t, s, "a"); a.Exec.Code != "v1" {
		t.Fatalf("before TTL: %q, want the cached v1", a.Exec.Code)
	}
	clk.advance(time.Millisecond)
	if a := mustGet(t, s, "a"); a.Exec.Code != "v2" || a.Rev != 2 {
		t.Fatalf("after TTL: %q rev %d, want v2 rev 2", a.Exec.Code, a.Rev)
	}
	if n := inner.actReads.Load(); n != 2 {
		t.Fatalf("inner reads = %d, want 2", n)
	}
	if st := s.Stats(); st.ActionHits != 5 || st.ActionMisses != 2 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestActionInvalidation(t *testing.T) {
	s, _, _ := setup(t, Config{TTL: time.Hour, NegativeTTL: time.Hour})
	ctx := t.Context()
	// A cached miss is dropped by the create: the action is visible at once.
	if _, err := s.GetAction(ctx, "ns", "a"); !whisk.IsKind(err, whisk.NotFound) {
		t.Fatalf("GetAction before create: %v", err)
	}
	v1, err := s.PutAction(ctx, action("a", "v1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if a := mustGet(t, s, "a"); a.Exec.Code != "v1" || a.Rev != v1.Rev {
		t.Fatalf("after create: %q rev %d", a.Exec.Code, a.Rev)
	}
	// An update is visible at once.
	v2, err := s.PutAction(ctx, action("a", "v2"), v1.Rev)
	if err != nil {
		t.Fatal(err)
	}
	if a := mustGet(t, s, "a"); a.Exec.Code != "v2" || a.Rev != v2.Rev {
		t.Fatalf("after update: %q rev %d", a.Exec.Code, a.Rev)
	}
	// The compare-and-swap is the inner store's: a stale revision conflicts.
	if _, err := s.PutAction(ctx, action("a", "v3"), v1.Rev); !whisk.IsKind(err, whisk.Conflict) {
		t.Fatalf("stale update: %v, want Conflict", err)
	}
	// A delete is visible at once.
	if _, err := s.DeleteAction(ctx, "ns", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAction(ctx, "ns", "a"); !whisk.IsKind(err, whisk.NotFound) {
		t.Fatalf("after delete: %v, want NotFound", err)
	}
}

func TestIdentityCacheAndInvalidation(t *testing.T) {
	s, inner, clk := setup(t, Config{TTL: 2 * time.Second, NegativeTTL: 500 * time.Millisecond})
	ctx := t.Context()
	id := whisk.Identity{Subject: "s", Namespace: "ns", UUID: "u1", Key: "k1"}
	if _, err := s.IdentityByUUID(ctx, "u1"); !whisk.IsKind(err, whisk.NotFound) {
		t.Fatalf("before put: %v", err)
	}
	if _, err := s.IdentityByUUID(ctx, "u1"); !whisk.IsKind(err, whisk.NotFound) {
		t.Fatalf("cached miss: %v", err)
	}
	if n := inner.idReads.Load(); n != 1 {
		t.Fatalf("inner reads = %d, want 1 (the miss is cached)", n)
	}
	if err := s.PutIdentity(ctx, id); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got, err := s.IdentityByUUID(ctx, "u1"); err != nil || got.Subject != id.Subject || got.Namespace != id.Namespace || !whisk.KeyMatches(got.KeyHash, id.Key) {
			t.Fatalf("after put: %+v, %v", got, err)
		}
	}
	if n := inner.idReads.Load(); n != 2 {
		t.Fatalf("inner reads = %d, want 2", n)
	}
	id.Key = "k2"
	if err := s.PutIdentity(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.IdentityByUUID(ctx, "u1"); !whisk.KeyMatches(got.KeyHash, "k2") {
		t.Fatalf("after key change: %+v", got)
	}
	// A miss written by another process expires after NegativeTTL.
	if _, err := s.IdentityByUUID(ctx, "u2"); !whisk.IsKind(err, whisk.NotFound) {
		t.Fatal(err)
	}
	if err := inner.Store.PutIdentity(ctx, whisk.Identity{UUID: "u2", Namespace: "ns2", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.IdentityByUUID(ctx, "u2"); !whisk.IsKind(err, whisk.NotFound) {
		t.Fatalf("within NegativeTTL: %v, want the cached miss", err)
	}
	clk.advance(500 * time.Millisecond)
	if got, err := s.IdentityByUUID(ctx, "u2"); err != nil || got.Namespace != "ns2" {
		t.Fatalf("after NegativeTTL: %+v, %v", got, err)
	}
}

// Deleting a key through the wrapper is seen at once; setting or deleting
// limits through it is seen at once by every cached key of the namespace;
// limits set by another process are seen once the TTL has passed.
func TestIdentityDeleteAndLimitsInvalidation(t *testing.T) {
	s, inner, clk := setup(t, Config{TTL: 2 * time.Second})
	ctx := t.Context()
	for _, id := range []whisk.Identity{
		{Subject: "a", Namespace: "ns", UUID: "u1", Key: "k1"},
		{Subject: "b", Namespace: "ns", UUID: "u2", Key: "k2"},
	} {
		if err := s.PutIdentity(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.IdentityByUUID(ctx, id.UUID); err != nil { // cache it
			t.Fatal(err)
		}
	}
	lim := whisk.NamespaceLimits{InvocationsPerMinute: 3}
	if err := s.PutNamespaceLimits(ctx, "ns", lim); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"u1", "u2"} {
		if got, err := s.IdentityByUUID(ctx, u); err != nil || got.Limits != lim {
			t.Fatalf("%s after PutNamespaceLimits: %+v, %v", u, got.Limits, err)
		}
	}
	if err := s.DeleteNamespaceLimits(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.IdentityByUUID(ctx, "u1"); got.Limits != (whisk.NamespaceLimits{}) {
		t.Fatalf("after DeleteNamespaceLimits: %+v", got.Limits)
	}
	// Another process's change: stale until the TTL passes.
	if err := inner.Store.PutNamespaceLimits(ctx, "ns", lim); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.IdentityByUUID(ctx, "u1"); got.Limits != (whisk.NamespaceLimits{}) {
		t.Fatalf("within TTL: %+v, want the cached identity", got.Limits)
	}
	clk.advance(2 * time.Second)
	if got, _ := s.IdentityByUUID(ctx, "u1"); got.Limits != lim {
		t.Fatalf("after TTL: %+v, want %+v", got.Limits, lim)
	}
	if err := s.DeleteIdentity(ctx, "u2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.IdentityByUUID(ctx, "u2"); !whisk.IsKind(err, whisk.NotFound) {
		t.Fatalf("after DeleteIdentity: %v, want NotFound", err)
	}
}

func TestMissesNotCachedByDefault(t *testing.T) {
	s, inner, _ := setup(t, Config{})
	for range 3 {
		if _, err := s.GetAction(t.Context(), "ns", "none"); !whisk.IsKind(err, whisk.NotFound) {
			t.Fatal(err)
		}
	}
	if n := inner.actReads.Load(); n != 3 {
		t.Fatalf("inner reads = %d, want 3", n)
	}
	// Written behind the cache's back, and still seen at once.
	if _, err := inner.Store.PutAction(t.Context(), action("none", "x"), 0); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, "none")
}

func TestErrorsNotCached(t *testing.T) {
	s, inner, _ := setup(t, Config{NegativeTTL: time.Hour})
	inner.fail = whisk.E("test", whisk.Internal, "", errors.New("disk on fire"))
	for range 2 {
		if _, err := s.GetAction(t.Context(), "ns", "a"); whisk.KindOf(err) != whisk.Internal {
			t.Fatal(err)
		}
		if _, err := s.IdentityByUUID(t.Context(), "u"); whisk.KindOf(err) != whisk.Internal {
			t.Fatal(err)
		}
	}
	if inner.actReads.Load() != 2 || inner.idReads.Load() != 2 {
		t.Fatalf("errors were cached: %d action reads, %d identity reads", inner.actReads.Load(), inner.idReads.Load())
	}
}

// With StaleIfError, an expired identity or action is served while the
// inner store is unreachable, up to StaleIfError past its expiry; never a
// miss, never on other errors, never after a write through the wrapper.
func TestStaleIfError(t *testing.T) {
	s, inner, clk := setup(t, Config{TTL: 2 * time.Second, StaleIfError: 30 * time.Second})
	ctx := t.Context()
	for _, n := range []string{"a", "b"} {
		if _, err := s.PutAction(ctx, action(n, "v1"), 0); err != nil {
			t.Fatal(err)
		}
		mustGet(t, s, n)
	}
	if err := s.PutIdentity(ctx, whisk.Identity{UUID: "u", Namespace: "ns", Subject: "s", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.IdentityByUUID(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	clk.advance(10 * time.Second) // expired, within the stale window
	inner.fail = whisk.E("test", whisk.Unavailable, "", errors.New("connection refused"))
	if a := mustGet(t, s, "a"); a.Exec.Code != "v1" {
		t.Fatalf("stale action: %q", a.Exec.Code)
	}
	if id, err := s.IdentityByUUID(ctx, "u"); err != nil || !whisk.KeyMatches(id.KeyHash, "k") {
		t.Fatalf("stale identity: %+v %v", id, err)
	}
	if st := s.Stats(); st.ActionStale != 1 || st.IdentityStale != 1 {
		t.Fatalf("stats = %+v", st)
	}
	// Never cached: the error stands.
	if _, err := s.GetAction(ctx, "ns", "never"); !whisk.IsKind(err, whisk.Unavailable) {
		t.Fatalf("uncached action while unreachable: %v", err)
	}
	// Another kind of error is not an outage.
	inner.fail = whisk.E("test", whisk.Internal, "", errors.New("disk on fire"))
	if _, err := s.GetAction(ctx, "ns", "a"); !whisk.IsKind(err, whisk.Internal) {
		t.Fatalf("internal error: %v", err)
	}
	// A write through the wrapper drops the entry.
	inner.fail = whisk.E("test", whisk.Timeout, "", errors.New("slow"))
	_, _ = s.DeleteAction(ctx, "ns", "b")
	if _, err := s.GetAction(ctx, "ns", "b"); !whisk.IsKind(err, whisk.Timeout) {
		t.Fatalf("action deleted through the wrapper: %v", err)
	}
	// Past the window the error stands.
	clk.advance(22 * time.Second) // 30 s past the expiry
	if _, err := s.GetAction(ctx, "ns", "a"); !whisk.IsKind(err, whisk.Timeout) {
		t.Fatalf("past the stale window: %v", err)
	}
	if _, err := s.IdentityByUUID(ctx, "u"); !whisk.IsKind(err, whisk.Timeout) {
		t.Fatalf("identity past the stale window: %v", err)
	}
	// The store is back: fresh reads, and a NotFound drops the old entry.
	inner.fail = nil
	if a := mustGet(t, s, "a"); a.Exec.Code != "v1" {
		t.Fatalf("after the outage: %q", a.Exec.Code)
	}
	if _, err := inner.Store.DeleteAction(ctx, "ns", "a"); err != nil {
		t.Fatal(err)
	}
	clk.advance(3 * time.Second)
	if _, err := s.GetAction(ctx, "ns", "a"); !whisk.IsKind(err, whisk.NotFound) {
		t.Fatalf("deleted elsewhere: %v", err)
	}
	inner.fail = whisk.E("test", whisk.Unavailable, "", errors.New("connection refused"))
	if _, err := s.GetAction(ctx, "ns", "a"); !whisk.IsKind(err, whisk.Unavailable) {
		t.Fatalf("an action found deleted must not come back stale: %v", err)
	}
}

// With StaleWait, a hung inner store (no answer, no error) is waited for
// only that long when an expired entry can stand in; otherwise the
// caller's context bounds the wait.
func TestStaleWait(t *testing.T) {
	s, inner, clk := setup(t, Config{TTL: 2 * time.Second, StaleIfError: time.Minute, StaleWait: 100 * time.Millisecond})
	ctx := t.Context()
	if _, err := s.PutAction(ctx, action("a", "v1"), 0); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, "a")
	if err := s.PutIdentity(ctx, whisk.Identity{UUID: "u", Namespace: "ns", Subject: "s", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.IdentityByUUID(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	clk.advance(5 * time.Second)
	inner.hang = true
	began := time.Now()
	if a := mustGet(t, s, "a"); a.Exec.Code != "v1" {
		t.Fatalf("stale action: %q", a.Exec.Code)
	}
	if id, err := s.IdentityByUUID(ctx, "u"); err != nil || !whisk.KeyMatches(id.KeyHash, "k") {
		t.Fatalf("stale identity: %+v %v", id, err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("two stale reads took %v, want about 2×100ms", took)
	}
	// Nothing to stand in: the caller's deadline is the bound.
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	began = time.Now()
	if _, err := s.GetAction(dctx, "ns", "never"); !errors.Is(err, context.DeadlineExceeded) || time.Since(began) < 250*time.Millisecond {
		t.Fatalf("uncached read on a hung store: %v after %v, want the caller's deadline", err, time.Since(began))
	}
}

// Without StaleIfError an expired entry is never served.
func TestNoStaleByDefault(t *testing.T) {
	s, inner, clk := setup(t, Config{TTL: 2 * time.Second})
	if _, err := s.PutAction(t.Context(), action("a", "v1"), 0); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, "a")
	clk.advance(2 * time.Second)
	inner.fail = whisk.E("test", whisk.Unavailable, "", errors.New("connection refused"))
	if _, err := s.GetAction(t.Context(), "ns", "a"); !whisk.IsKind(err, whisk.Unavailable) {
		t.Fatalf("expired entry served without StaleIfError: %v", err)
	}
}

// A read that started before a write through the wrapper must not put its
// older answer into the cache after the write invalidated it.
func TestInFlightReadDoesNotResurrect(t *testing.T) {
	s, inner, _ := setup(t, Config{TTL: time.Hour})
	ctx := t.Context()
	if _, err := s.PutAction(ctx, action("a", "v1"), 0); err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	inner.block, inner.entered = block, make(chan struct{})
	done := make(chan whisk.Action)
	go func() {
		a, _ := s.GetAction(ctx, "ns", "a")
		done <- a
	}()
	<-inner.entered // the read has v1 in hand
	if _, err := s.PutAction(ctx, action("a", "v2"), 1); err != nil {
		t.Fatal(err)
	}
	inner.block, inner.entered = nil, nil
	close(block)
	if a := <-done; a.Exec.Code != "v1" {
		t.Fatalf("in-flight read = %q, want v1", a.Exec.Code)
	}
	if a := mustGet(t, s, "a"); a.Exec.Code != "v2" {
		t.Fatalf("after the write = %q, want v2 (the in-flight v1 was cached)", a.Exec.Code)
	}
}

func TestBoundedLRU(t *testing.T) {
	s, inner, _ := setup(t, Config{TTL: time.Hour, MaxEntries: 3})
	ctx := t.Context()
	for _, n := range []string{"a", "b", "c", "d"} {
		if _, err := inner.Store.PutAction(ctx, action(n, n), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"a", "b", "c", "a", "d"} { // d evicts b, the least recently used
		mustGet(t, s, n)
	}
	if got := s.acts.size(); got != 3 {
		t.Fatalf("size = %d, want 3", got)
	}
	before := inner.actReads.Load()
	for _, n := range []string{"a", "c", "d"} {
		mustGet(t, s, n)
	}
	if got := inner.actReads.Load() - before; got != 0 {
		t.Fatalf("a, c, d: %d inner reads, want 0", got)
	}
	mustGet(t, s, "b")
	if got := inner.actReads.Load() - before; got != 1 {
		t.Fatalf("b: %d inner reads, want 1 (evicted)", got)
	}
}

// The action cache is bounded by the bytes it holds too: big actions
// (native binaries, zips) evict the least recently used, and one too big
// for a quarter of the budget is not kept at all.
func TestActionCacheBoundedByBytes(t *testing.T) {
	s, inner, _ := setup(t, Config{TTL: time.Hour, MaxActionBytes: 40 << 10})
	ctx := t.Context()
	big := strings.Repeat("x", 9<<10) // ~9.6 KiB each with the allowance: 4 fit in 40 KiB
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if _, err := inner.Store.PutAction(ctx, action(n, big), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := inner.Store.PutAction(ctx, action("huge", strings.Repeat("y", 11<<10)), 0); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c", "d", "a", "e"} { // e evicts b, the least recently used
		mustGet(t, s, n)
	}
	if got, total := s.acts.size(), s.acts.total; got != 4 || total > 40<<10 {
		t.Fatalf("size = %d holding %d bytes, want 4 within %d", got, total, 40<<10)
	}
	before := inner.actReads.Load()
	for _, n := range []string{"a", "c", "d", "e"} {
		mustGet(t, s, n)
	}
	if got := inner.actReads.Load() - before; got != 0 {
		t.Fatalf("a, c, d, e: %d inner reads, want 0", got)
	}
	mustGet(t, s, "b")
	if got := inner.actReads.Load() - before; got != 1 {
		t.Fatalf("b: %d inner reads, want 1 (evicted)", got)
	}
	// Over a quarter of the budget: read through every time, evicting nothing.
	size := s.acts.size()
	for range 2 {
		mustGet(t, s, "huge")
	}
	if got := inner.actReads.Load() - before; got != 3 {
		t.Fatalf("huge twice: %d inner reads in all, want 3", got)
	}
	if s.acts.size() != size {
		t.Fatalf("size %d after the huge action, want %d", s.acts.size(), size)
	}
}

// Callers may change what they got without changing the cache.
func TestValuesAreCopies(t *testing.T) {
	s, _, _ := setup(t, Config{TTL: time.Hour})
	if _, err := s.PutAction(t.Context(), action("a", "v1"), 0); err != nil {
		t.Fatal(err)
	}
	a := mustGet(t, s, "a")
	a.Parameters[0].Value[1] = 'X'
	a.Parameters[0].Key = "changed"
	b := mustGet(t, s, "a")
	b.Parameters = append(b.Parameters, whisk.KeyValue{Key: "more"})
	c := mustGet(t, s, "a")
	if len(c.Parameters) != 1 || c.Parameters[0].Key != "p" || string(c.Parameters[0].Value) != `"v"` {
		t.Fatalf("cached action changed by a caller: %+v", c.Parameters)
	}
}

// Readers and writers at once (run with -race): after the writers are
// done, a read through the cache sees each action's last revision.
func TestConcurrent(t *testing.T) {
	s, _, clk := setup(t, Config{TTL: time.Hour, MaxEntries: 4})
	ctx := t.Context()
	const actions, writes = 8, 20
	for i := range actions {
		if _, err := s.PutAction(ctx, action(fmt.Sprint("a", i), "v0"), 0); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.GetAction(ctx, "ns", fmt.Sprint("a", (r+i)%actions)); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.IdentityByUUID(ctx, "nobody"); !whisk.IsKind(err, whisk.NotFound) {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					clk.advance(time.Millisecond)
				}
			}
		})
	}
	var ww sync.WaitGroup
	for i := range actions {
		ww.Go(func() {
			name := fmt.Sprint("a", i)
			for w := range writes {
				if _, err := s.PutAction(ctx, action(name, fmt.Sprint("v", w+1)), int64(w+1)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	ww.Wait()
	close(stop)
	wg.Wait()
	for i := range actions {
		if a := mustGet(t, s, fmt.Sprint("a", i)); a.Rev != writes+1 || a.Exec.Code != fmt.Sprint("v", writes) {
			t.Errorf("a%d: rev %d code %q, want rev %d", i, a.Rev, a.Exec.Code, writes+1)
		}
	}
}

func TestDefaults(t *testing.T) {
	s := New(nil, Config{TTL: -1, NegativeTTL: -1})
	if s.cfg.TTL != DefaultTTL || s.cfg.NegativeTTL != 0 || s.cfg.MaxEntries != DefaultMaxEntries || s.cfg.Now == nil {
		t.Fatalf("defaults: %+v", s.cfg)
	}
}

func BenchmarkGetActionHit(b *testing.B) {
	inner, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "eddy.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	s := New(inner, Config{})
	defer s.Close()
	if _, err := s.PutAction(b.Context(), action("a", "v1"), 0); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetAction(b.Context(), "ns", "a"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// Callers that miss the same action while a read of it is in flight wait
// for that read instead of reading too, and each gets its own copy.
func TestConcurrentMissesShareOneRead(t *testing.T) {
	s, inner, _ := setup(t, Config{TTL: time.Hour})
	ctx := t.Context()
	if _, err := s.PutAction(ctx, action("a", "v1"), 0); err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	inner.block, inner.entered = block, make(chan struct{}, 64)
	const callers = 20
	got := make(chan whisk.Action, callers+1)
	get := func() {
		a, err := s.GetAction(ctx, "ns", "a")
		if err != nil {
			t.Error(err)
		}
		got <- a
	}
	go get()
	<-inner.entered // the first caller is reading
	for range callers {
		go get()
	}
	time.Sleep(100 * time.Millisecond) // time for the others to reach the inner store, were they to read
	if n := inner.actReads.Load(); n != 1 {
		t.Fatalf("%d inner reads with one in flight, want 1", n)
	}
	close(block)
	var all []whisk.Action
	for range callers + 1 {
		a := <-got
		if a.Exec.Code != "v1" {
			t.Fatalf("shared read = %q, want v1", a.Exec.Code)
		}
		all = append(all, a)
	}
	if n := inner.actReads.Load(); n != 1 {
		t.Fatalf("%d inner reads, want 1", n)
	}
	all[0].Parameters[0].Value[1] = 'X'
	for _, a := range all[1:] {
		if string(a.Parameters[0].Value) != `"v"` {
			t.Fatalf("callers share a value: %s", a.Parameters[0].Value)
		}
	}
}

// A caller does not join a read begun before a write through the cache:
// the write is seen at once.
func TestNoJoinAcrossWrite(t *testing.T) {
	s, inner, _ := setup(t, Config{TTL: time.Hour})
	ctx := t.Context()
	if _, err := s.PutAction(ctx, action("a", "v1"), 0); err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	inner.block, inner.entered = block, make(chan struct{}, 1)
	done := make(chan whisk.Action)
	go func() {
		a, _ := s.GetAction(ctx, "ns", "a")
		done <- a
	}()
	<-inner.entered // a read has v1 in hand
	inner.block = nil
	if _, err := s.PutAction(ctx, action("a", "v2"), 1); err != nil {
		t.Fatal(err)
	}
	if a := mustGet(t, s, "a"); a.Exec.Code != "v2" {
		t.Fatalf("read after the write = %q, want v2", a.Exec.Code)
	}
	close(block)
	if a := <-done; a.Exec.Code != "v1" {
		t.Fatalf("in-flight read = %q, want v1", a.Exec.Code)
	}
}

// firstHangs is a store whose first GetAction waits for its context to end.
type firstHangs struct {
	store.Store
	reads atomic.Int64
}

func (f *firstHangs) GetAction(ctx context.Context, namespace, name string) (whisk.Action, error) {
	if f.reads.Add(1) == 1 {
		<-ctx.Done()
		return whisk.Action{}, ctx.Err()
	}
	return f.Store.GetAction(ctx, namespace, name)
}

// When the reading caller gives up, the callers waiting on its read read
// again instead of failing with its cancellation.
func TestLeaderCancelledWaitersRead(t *testing.T) {
	inner := &firstHangs{Store: openSQLite(t)}
	s := New(inner, Config{})
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	if _, err := s.PutAction(ctx, action("a", "v1"), 0); err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithCancel(ctx)
	lerr := make(chan error)
	go func() {
		_, err := s.GetAction(lctx, "ns", "a")
		lerr <- err
	}()
	for inner.reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	waiter := make(chan error)
	go func() {
		a, err := s.GetAction(ctx, "ns", "a")
		if err == nil && a.Exec.Code != "v1" {
			err = fmt.Errorf("code %q", a.Exec.Code)
		}
		waiter <- err
	}()
	time.Sleep(50 * time.Millisecond) // time for the waiter to join
	if n := inner.reads.Load(); n != 1 {
		t.Fatalf("%d inner reads with one in flight, want 1", n)
	}
	cancel()
	if err := <-lerr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	if err := <-waiter; err != nil {
		t.Fatalf("waiter: %v", err)
	}
}

// slowTimeout is a store whose GetAction waits for release, then fails
// with its own timeout (as a database's per-operation bound does).
type slowTimeout struct {
	store.Store
	reads   atomic.Int64
	release chan struct{}
}

func (s *slowTimeout) GetAction(ctx context.Context, namespace, name string) (whisk.Action, error) {
	s.reads.Add(1)
	<-s.release
	return whisk.Action{}, whisk.E("test.GetAction", whisk.Timeout, "", context.DeadlineExceeded)
}

// A store's own timeout is an answer the waiters share: they do not each
// read (and wait as long) again.
func TestStoreTimeoutIsShared(t *testing.T) {
	inner := &slowTimeout{Store: openSQLite(t), release: make(chan struct{})}
	s := New(inner, Config{})
	t.Cleanup(func() { s.Close() })
	const callers = 8
	errs := make(chan error, callers)
	var started sync.WaitGroup
	started.Add(callers)
	for range callers {
		go func() {
			started.Done()
			_, err := s.GetAction(t.Context(), "ns", "a")
			errs <- err
		}()
	}
	started.Wait()
	for inner.reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // time for the others to join
	close(inner.release)
	for range callers {
		if err := <-errs; !whisk.IsKind(err, whisk.Timeout) {
			t.Fatalf("caller: %v, want the store's timeout", err)
		}
	}
	if n := inner.reads.Load(); n != 1 {
		t.Fatalf("%d inner reads, want 1 (waiters read again after the store's timeout)", n)
	}
}
