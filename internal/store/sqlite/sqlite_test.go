package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/store/storetest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

func openT(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openT(t, filepath.Join(t.TempDir(), "eddy.db"))
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestContractInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openT(t, ":memory:")
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestReopenPersists(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "eddy.db")
	s := openT(t, path)
	id := whisk.Identity{Subject: "guest", Namespace: whisk.GuestNamespace, UUID: whisk.GuestUUID, Key: whisk.GuestKey,
		Limits: whisk.NamespaceLimits{InvocationsPerMinute: 10}}
	if err := s.PutIdentity(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.PutNamespaceLimits(ctx, id.Namespace, id.Limits); err != nil {
		t.Fatal(err)
	}
	a := whisk.Action{Namespace: "guest", Name: "hello", Exec: whisk.Exec{Kind: "python:3", Code: "def main(a): return a"}}
	v1, err := s.PutAction(ctx, a, 0)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := s.PutAction(ctx, a, v1.Rev)
	if err != nil {
		t.Fatal(err)
	}
	rec := whisk.Activation{Namespace: "guest", Name: "hello", ActivationID: whisk.NewActivationID(), Start: 5, End: 6,
		Logs: []string{"line"}}
	if err := s.PutActivation(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, path)
	defer s.Close()
	if got, err := s.IdentityByUUID(ctx, id.UUID); err != nil || got.Namespace != id.Namespace || got.Limits != id.Limits || !whisk.KeyMatches(got.KeyHash, id.Key) {
		t.Errorf("identity after reopen = %+v, %v; want %+v", got, err, id)
	}
	got, err := s.GetAction(ctx, "guest", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if got.Rev != v2.Rev || got.Updated != v2.Updated || got.Exec.Code != a.Exec.Code {
		t.Errorf("action after reopen = rev %d updated %d code %q; want rev %d updated %d code %q",
			got.Rev, got.Updated, got.Exec.Code, v2.Rev, v2.Updated, a.Exec.Code)
	}
	if _, err := s.PutAction(ctx, a, v1.Rev); !whisk.IsKind(err, whisk.Conflict) {
		t.Errorf("stale update after reopen: %v, want Conflict", err)
	}
	r, err := s.GetActivation(ctx, "guest", rec.ActivationID)
	if err != nil || r.Start != 5 || len(r.Logs) != 1 {
		t.Errorf("activation after reopen = %+v, %v", r, err)
	}
}

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eddy.db")
	openT(t, path).Close()
	s := openT(t, path) // a second open applies nothing and keeps the version
	defer s.Close()
	var v, rows int
	if err := s.r.QueryRowContext(t.Context(), `SELECT max(version), count(*) FROM schema_version`).Scan(&v, &rows); err != nil {
		t.Fatal(err)
	}
	if v != len(migrations) || rows != 1 {
		t.Errorf("schema_version = %d (%d rows), want %d (1 row)", v, rows, len(migrations))
	}
	var mode string
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk int
	if err := s.r.QueryRowContext(t.Context(), `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v; want 1", fk, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eddy.db")
	s := openT(t, path)
	if _, err := s.w.ExecContext(t.Context(), `UPDATE schema_version SET version = ?`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(t.Context(), path, nil); err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer binary succeeded")
	}
}

// TestTwoStoresOneFile has two Stores (as two processes would) write the
// same file at once; the busy timeout makes them wait for each other.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "eddy.db")
	s1, s2 := openT(t, path), openT(t, path)
	defer s1.Close()
	defer s2.Close()
	var wg sync.WaitGroup
	for i := range 40 {
		s := s1
		if i%2 == 1 {
			s = s2
		}
		wg.Go(func() {
			rec := whisk.Activation{Namespace: "ns", Name: "a", ActivationID: whisk.ActivationID(fmt.Sprintf("%032x", i)), Start: int64(i)}
			if err := s.PutActivation(ctx, rec); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n, err := s1.CountActivations(ctx, "ns", store.ActivationFilter{}); err != nil || n != 40 {
		t.Errorf("count = %d, %v; want 40", n, err)
	}
}

func TestUpdatedUsesClock(t *testing.T) {
	s := openT(t, ":memory:")
	defer s.Close()
	at := time.UnixMilli(1_700_000_000_123)
	s.now = func() time.Time { return at }
	a, err := s.PutAction(t.Context(), whisk.Action{Namespace: "ns", Name: "a"}, 0)
	if err != nil || a.Updated != at.UnixMilli() {
		t.Fatalf("Updated = %d, %v; want %d", a.Updated, err, at.UnixMilli())
	}
}

func TestErrorsWrapDriver(t *testing.T) {
	s := openT(t, ":memory:")
	s.Close()
	_, err := s.GetAction(context.Background(), "ns", "a")
	if whisk.KindOf(err) != whisk.Internal {
		t.Fatalf("kind = %v (%v), want internal", whisk.KindOf(err), err)
	}
	var we *whisk.Error
	if !errors.As(err, &we) || we.Err == nil || we.Msg != "" {
		t.Fatalf("driver error not wrapped as the cause: %#v", err)
	}
}

func TestOpenBadPath(t *testing.T) {
	if s, err := Open(t.Context(), filepath.Join(t.TempDir(), "missing-dir", "x", "eddy.db"), nil); err == nil {
		s.Close()
		t.Fatal("Open in a missing directory succeeded")
	}
}

func BenchmarkPutActivation(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "eddy.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		rec := whisk.Activation{Namespace: "ns", Name: "a", ActivationID: whisk.ActivationID(fmt.Sprintf("%032x", i)), Start: int64(i)}
		if err := s.PutActivation(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutActivationConcurrent has N goroutines write records at once,
// as an invoker's containers do; ns/op is per record.
func BenchmarkPutActivationConcurrent(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			s, err := Open(b.Context(), filepath.Join(b.TempDir(), "eddy.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						rec := whisk.Activation{Namespace: "ns", Name: "a", ActivationID: whisk.ActivationID(fmt.Sprintf("%032x", i)),
							Start: i, Logs: []string{"a log line"}}
						if err := s.PutActivation(b.Context(), rec); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

func rec(i int, name string) whisk.Activation {
	return whisk.Activation{Namespace: "ns", Name: name, ActivationID: whisk.ActivationID(fmt.Sprintf("%032x", i)), Start: int64(i)}
}

// TestGroupCommit: many concurrent writers are grouped into few
// transactions, and every record whose write returned nil is there.
func TestGroupCommit(t *testing.T) {
	ctx := t.Context()
	s := openT(t, filepath.Join(t.TempDir(), "eddy.db"))
	defer s.Close()
	// Hold the write connection so that the writers pile up behind it.
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	const writers = 200
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			if err := s.PutActivation(ctx, rec(i, "a")); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n, err := s.CountActivations(ctx, "ns", store.ActivationFilter{}); err != nil || n != writers {
		t.Fatalf("count = %d, %v; want %d", n, err, writers)
	}
	if got := s.recorded.Load(); got != writers {
		t.Errorf("recorded = %d, want %d", got, writers)
	}
	if b := s.batches.Load(); b == 0 || b > writers/10 {
		t.Errorf("%d records in %d batched transactions; want them grouped", writers, b)
	}
}

// TestGroupCommitOneBadRecord: a record that fails gets its error, and
// the others of its batch are still written, whether the failure aborts
// only its statement or the whole transaction.
func TestGroupCommitOneBadRecord(t *testing.T) {
	for _, raise := range []string{"ABORT", "ROLLBACK"} {
		t.Run(raise, func(t *testing.T) {
			ctx := t.Context()
			s := openT(t, filepath.Join(t.TempDir(), "eddy.db"))
			defer s.Close()
			if _, err := s.w.ExecContext(ctx, `CREATE TRIGGER reject BEFORE INSERT ON activations
				WHEN NEW.name = 'bad' BEGIN SELECT RAISE(`+raise+`, 'rejected'); END`); err != nil {
				t.Fatal(err)
			}
			tx, err := s.w.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			const writers = 100
			errs := make([]error, writers)
			var wg sync.WaitGroup
			for i := range writers {
				name := "good"
				if i%7 == 3 {
					name = "bad"
				}
				wg.Go(func() { errs[i] = s.PutActivation(ctx, rec(i, name)) })
			}
			time.Sleep(100 * time.Millisecond)
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			good := 0
			for i, err := range errs {
				switch {
				case i%7 == 3 && err == nil:
					t.Errorf("record %d (bad) written", i)
				case i%7 != 3 && err != nil:
					t.Errorf("record %d (good): %v", i, err)
				case err == nil:
					good++
				}
			}
			if n, err := s.CountActivations(ctx, "ns", store.ActivationFilter{}); err != nil || n != good {
				t.Fatalf("count = %d, %v; want %d", n, err, good)
			}
		})
	}
}

// TestPutActivationClose: writers racing Close either got nil and their
// record is in the file, or got an error; none hangs.
func TestPutActivationClose(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "eddy.db")
	s := openT(t, path)
	const writers = 200
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			if err := s.PutActivation(ctx, rec(i, "a")); err == nil {
				ok.Add(1)
			} else if whisk.KindOf(err) != whisk.Internal {
				t.Errorf("write during close: %v", err)
			}
		})
	}
	time.Sleep(time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := s.PutActivation(ctx, rec(1000, "a")); whisk.KindOf(err) != whisk.Internal {
		t.Errorf("PutActivation after Close: %v, want an internal error", err)
	}
	s = openT(t, path)
	defer s.Close()
	if n, err := s.CountActivations(ctx, "ns", store.ActivationFilter{}); err != nil || int64(n) != ok.Load() {
		t.Fatalf("count after reopen = %d, %v; want %d (the writes that returned nil)", n, err, ok.Load())
	}
	t.Logf("%d of %d writes done before Close", ok.Load(), writers)
}

// TestPutActivationCanceled: a caller whose context is done is not written.
func TestPutActivationCanceled(t *testing.T) {
	s := openT(t, ":memory:")
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.PutActivation(ctx, rec(1, "a")); err == nil {
		t.Fatal("PutActivation with a canceled context succeeded")
	}
	if n, _ := s.CountActivations(t.Context(), "ns", store.ActivationFilter{}); n != 0 {
		t.Fatalf("count = %d, want 0", n)
	}
}

// TestCommitDelay: with a CommitDelay, records of a stream that arrive
// one by one are committed together; a write after a quiet spell is not
// delayed; Close does not wait out a delay. "Not waiting" is judged
// against half the delay, which is long (2 s) so that a busy machine's
// slow write is not taken for a wait.
func TestCommitDelay(t *testing.T) {
	ctx := t.Context()
	const delay = 2 * time.Second
	s, err := OpenWith(ctx, filepath.Join(t.TempDir(), "eddy.db"), nil, Options{CommitDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	if err := s.PutActivation(ctx, rec(0, "a")); err != nil { // after a quiet spell: at once
		t.Fatal(err)
	}
	if d := time.Since(start); d > delay/2 {
		t.Errorf("a lone write took %v; it should not wait", d)
	}
	var wg sync.WaitGroup
	for i := 1; i <= 5; i++ { // a stream: one record every 5 ms
		time.Sleep(5 * time.Millisecond)
		wg.Go(func() {
			if err := s.PutActivation(ctx, rec(i, "a")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n, err := s.CountActivations(ctx, "ns", store.ActivationFilter{}); err != nil || n != 6 {
		t.Fatalf("count = %d, %v; want 6", n, err)
	}
	if b := s.batches.Load(); b == 0 {
		t.Errorf("the stream was not batched (%d batches)", b)
	}

	time.Sleep(max(streamWindow, delay) + 10*time.Millisecond) // a quiet spell
	if err := s.PutActivation(ctx, rec(10, "a")); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.PutActivation(ctx, rec(11, "a")) }() // waits for company
	time.Sleep(20 * time.Millisecond)
	start = time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > delay/2 {
		t.Errorf("Close took %v; it should cut the delay short", d)
	}
	if err := <-errc; err != nil {
		t.Errorf("the record taken before Close: %v", err)
	}
}

// TestMigrateNamespaceLimits opens a database of schema version 1, where
// limits were stored on each identity, and checks that migration 2 moves
// them to the namespace.
func TestMigrateNamespaceLimits(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "eddy.db")
	all := migrations
	migrations = all[:1]
	s, err := Open(ctx, path, nil)
	migrations = all
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO identities (uuid, namespace, subject, key, limits) VALUES
		('u1', 'ns', 'a', 'k1', '{"invocationsPerMinute":5,"concurrentInvocations":2}'),
		('u2', 'ns', 'b', 'k2', '{"invocationsPerMinute":5,"concurrentInvocations":2}'),
		('u3', 'plain', 'c', 'k3', '{}')`); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openT(t, path)
	defer s.Close()
	want := whisk.NamespaceLimits{InvocationsPerMinute: 5, ConcurrentContainers: 2}
	if got, err := s.GetNamespaceLimits(ctx, "ns"); err != nil || got != want {
		t.Errorf("GetNamespaceLimits(ns) = %+v, %v; want %+v", got, err, want)
	}
	if _, err := s.GetNamespaceLimits(ctx, "plain"); !whisk.IsKind(err, whisk.NotFound) {
		t.Errorf("GetNamespaceLimits(plain) = %v, want NotFound", err)
	}
	if id, err := s.IdentityByUUID(ctx, "u2"); err != nil || id.Limits != want || id.Subject != "b" {
		t.Errorf("IdentityByUUID(u2) = %+v, %v", id, err)
	}
}

// beforeKeyHash returns the migrations of a database written before keys
// were hashed: those before the one adding key_hash.
func beforeKeyHash(t *testing.T) []string {
	for i, m := range migrations {
		if strings.Contains(m, "key_hash") {
			return migrations[:i]
		}
	}
	t.Fatal("no migration adds key_hash")
	return nil
}

// TestMigrateHashesKeys opens a database written when keys were stored
// in plain text and checks that Open replaces every key by its hash, and
// that the guest key and the others still authenticate.
func TestMigrateHashesKeys(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "eddy.db")
	all := migrations
	migrations = beforeKeyHash(t)
	s, err := Open(ctx, path, nil)
	migrations = all
	if err != nil {
		t.Fatal(err)
	}
	_, other := whisk.NewAuthKey()
	if _, err := s.w.ExecContext(ctx, `INSERT INTO identities (uuid, namespace, subject, key, limits) VALUES
		(?, 'guest', 'guest', ?, '{}'), ('u2', 'ns', 'b', ?, '{}')`, whisk.GuestUUID, whisk.GuestKey, other); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openT(t, path)
	defer s.Close()
	var plain int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM identities WHERE key <> '' OR key_hash NOT LIKE 'sha256$%'`).Scan(&plain); err != nil || plain != 0 {
		t.Fatalf("rows with a plain key or no hash after migration: %d, %v", plain, err)
	}
	for uuid, key := range map[string]string{whisk.GuestUUID: whisk.GuestKey, "u2": other} {
		id, err := s.IdentityByUUID(ctx, uuid)
		if err != nil || id.Key != "" || !whisk.KeyMatches(id.KeyHash, key) || whisk.KeyMatches(id.KeyHash, key+"x") {
			t.Errorf("IdentityByUUID(%s) after migration = %+v, %v", uuid, id, err)
		}
	}
}

// TestFilesPrivate checks that the database and its -wal and -shm files
// are readable by their owner only, when created and when an existing
// database was readable by others.
func TestFilesPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "eddy.db")
	check := func(when string) {
		t.Helper()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if m := fi.Mode().Perm(); m != 0o600 {
				t.Errorf("%s: %s has mode %v, want 0600", when, filepath.Base(p), m)
			}
		}
	}
	s := openT(t, path)
	if err := s.PutIdentity(t.Context(), whisk.Identity{Subject: "a", Namespace: "a", UUID: "u", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	check("created")
	s.Close()
	// An older Eddy left the files 0644 (the -wal file is gone after a
	// clean close, the -shm one may stay).
	for _, p := range []string{path, path + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	s = openT(t, path)
	defer s.Close()
	if err := s.PutIdentity(t.Context(), whisk.Identity{Subject: "b", Namespace: "b", UUID: "u2", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	check("reopened")
}
