package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/store/postgres/pgtest"
	"github.com/eddy-faas/eddy/internal/store/storetest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// TestMain shares one PostgreSQL server between the tests (pgtest.Start);
// tests that stop or restart theirs start their own.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func openT(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(t.Context(), url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	return s
}

// TestContract runs the contract suite, each subtest on a new database of
// one server.
func TestContract(t *testing.T) {
	srv := pgtest.Shared(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openT(t, srv.NewDatabase(t))
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestReopenPersists(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	s := openT(t, url)
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

	s = openT(t, url)
	defer s.Close()
	if got, err := s.IdentityByUUID(ctx, id.UUID); err != nil || got != id {
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

// schemaVersion reads schema_version: its version and its number of rows.
func schemaVersion(t *testing.T, s *Store) (v, rows int) {
	t.Helper()
	if err := s.pool.QueryRow(t.Context(), `SELECT max(version), count(*) FROM schema_version`).Scan(&v, &rows); err != nil {
		t.Fatal(err)
	}
	return v, rows
}

func TestSchemaVersion(t *testing.T) {
	url := pgtest.Start(t)
	openT(t, url).Close()
	s := openT(t, url) // a second open applies nothing and keeps the version
	defer s.Close()
	if v, rows := schemaVersion(t, s); v != len(migrations) || rows != 1 {
		t.Errorf("schema_version = %d (%d rows), want %d (1 row)", v, rows, len(migrations))
	}
	var tables []string
	rows, err := s.pool.Query(t.Context(), `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`)
	if err != nil {
		t.Fatal(err)
	}
	if tables, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if want := []string{"actions", "activations", "entities", "identities", "namespace_limits", "schema_version"}; !slices.Equal(tables, want) {
		t.Errorf("tables = %v, want %v", tables, want)
	}
	// The activation list queries use the (namespace, ..., start desc, id) indexes.
	for _, ix := range []string{"activations_ns_start", "activations_ns_name_start"} {
		var def string
		if err := s.pool.QueryRow(t.Context(), `SELECT indexdef FROM pg_indexes WHERE indexname = $1`, ix).Scan(&def); err != nil {
			t.Errorf("index %s: %v", ix, err)
		} else if !strings.Contains(def, "start DESC, activation_id") {
			t.Errorf("index %s = %s", ix, def)
		}
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	url := pgtest.Start(t)
	s := openT(t, url)
	if _, err := s.pool.Exec(t.Context(), `UPDATE schema_version SET version = $1`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(t.Context(), url, nil)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer binary succeeded")
	}
	if !strings.Contains(err.Error(), "newer than this binary") {
		t.Errorf("err = %v", err)
	}
}

// TestConcurrentMigrations opens a fresh database from five stores at once,
// as processes starting together would: all succeed and the schema is
// applied once.
func TestConcurrentMigrations(t *testing.T) {
	url := pgtest.Start(t)
	const n = 5
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(t.Context(), url, nil)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	if v, rows := schemaVersion(t, stores[0]); v != len(migrations) || rows != 1 {
		t.Errorf("schema_version = %d (%d rows), want %d (1 row)", v, rows, len(migrations))
	}
	// Every store works on the one schema.
	for i, s := range stores {
		if _, err := s.PutAction(t.Context(), whisk.Action{Namespace: "ns", Name: fmt.Sprint("a", i)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := stores[n-1].CountActions(t.Context(), "ns"); err != nil || n != len(stores) {
		t.Errorf("CountActions = %d, %v; want %d", n, err, len(stores))
	}
}

// TestStoresShareDatabase has 50 writers on two Stores (as two processes
// would) write the same database at once, all racing on one action's
// revision too.
func TestStoresShareDatabase(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	s1, s2 := openT(t, url), openT(t, url)
	defer s1.Close()
	defer s2.Close()
	if _, err := s1.PutAction(ctx, whisk.Action{Namespace: "ns", Name: "shared"}, 0); err != nil {
		t.Fatal(err)
	}
	const writers = 50
	var wg sync.WaitGroup
	for i := range writers {
		s := s1
		if i%2 == 1 {
			s = s2
		}
		wg.Go(func() {
			rec := whisk.Activation{Namespace: "ns", Name: "a", ActivationID: whisk.ActivationID(fmt.Sprintf("%032x", i)), Start: int64(i)}
			if err := s.PutActivation(ctx, rec); err != nil {
				t.Error(err)
			}
			for {
				cur, err := s.GetAction(ctx, "ns", "shared")
				if err != nil {
					t.Error(err)
					return
				}
				_, err = s.PutAction(ctx, whisk.Action{Namespace: "ns", Name: "shared", Version: fmt.Sprint(i)}, cur.Rev)
				if err == nil {
					return
				}
				if !whisk.IsKind(err, whisk.Conflict) || whisk.UserMessage(err) != whisk.MsgConcurrentUpdate {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n, err := s2.CountActivations(ctx, "ns", store.ActivationFilter{}); err != nil || n != writers {
		t.Errorf("count = %d, %v; want %d", n, err, writers)
	}
	if a, err := s1.GetAction(ctx, "ns", "shared"); err != nil || a.Rev != writers+1 {
		t.Errorf("shared action rev = %d, %v; want %d", a.Rev, err, writers+1)
	}
}

func TestUpdatedUsesClock(t *testing.T) {
	s := openT(t, pgtest.Start(t))
	defer s.Close()
	at := time.UnixMilli(1_700_000_000_123)
	s.now = func() time.Time { return at }
	a, err := s.PutAction(t.Context(), whisk.Action{Namespace: "ns", Name: "a"}, 0)
	if err != nil || a.Updated != at.UnixMilli() {
		t.Fatalf("Updated = %d, %v; want %d", a.Updated, err, at.UnixMilli())
	}
	if got, err := s.GetAction(t.Context(), "ns", "a"); err != nil || got.Updated != at.UnixMilli() {
		t.Fatalf("stored Updated = %d, %v; want %d", got.Updated, err, at.UnixMilli())
	}
}

// TestListOrderIsBytewise runs on a database whose default collation is
// ICU's en-US, where "a" < "B": names still sort byte-wise, as in SQLite.
func TestListOrderIsBytewise(t *testing.T) {
	url := pgtest.Shared(t).NewDatabaseWith(t, `TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`)
	s := openT(t, url)
	defer s.Close()
	ctx := t.Context()
	names := []string{"b", "B", "a", "A", "_x", "-y", "Zed", "é", "a1", "a-1"}
	for i, n := range names {
		if _, err := s.PutAction(ctx, whisk.Action{Namespace: "ns", Name: n}, 0); err != nil {
			t.Fatal(err)
		}
		rec := whisk.Activation{Namespace: "ns", Name: "x", ActivationID: whisk.ActivationID(n), Start: int64(i % 2)}
		if err := s.PutActivation(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	want := slices.Clone(names)
	slices.Sort(want)
	got, err := s.ListActions(ctx, "ns", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if names := actionNames(got); !slices.Equal(names, want) {
		t.Errorf("ListActions = %q, want byte order %q", names, want)
	}
	recs, err := s.ListActivations(ctx, "ns", store.ActivationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		if r.Start == 0 {
			ids = append(ids, string(r.ActivationID))
		}
	}
	var wantIDs []string
	for i, n := range names {
		if i%2 == 0 {
			wantIDs = append(wantIDs, n)
		}
	}
	slices.Sort(wantIDs)
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("activations with one start = %q, want byte order %q", ids, wantIDs)
	}
}

func actionNames(as []whisk.Action) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Name
	}
	return out
}

// TestUnstorableCharacters stores what JSONB cannot hold (NUL, lone
// surrogates): the write succeeds and they come back as U+FFFD.
func TestUnstorableCharacters(t *testing.T) {
	s := openT(t, pgtest.Start(t))
	defer s.Close()
	ctx := t.Context()
	rec := whisk.Activation{Namespace: "ns", Name: "nul", ActivationID: whisk.NewActivationID(), Start: 1,
		Logs:     []string{"2024-01-01T00:00:00Z stdout: a\x00b"},
		Response: whisk.NewResponse(whisk.StatusSuccess, []byte(`{"s":"x\ud800y","pair":"\ud83d\ude00","nul":"\u0000"}`)),
	}
	if err := s.PutActivation(ctx, rec); err != nil {
		t.Fatalf("PutActivation with NUL and a lone surrogate: %v", err)
	}
	got, err := s.GetActivation(ctx, "ns", rec.ActivationID)
	if err != nil {
		t.Fatal(err)
	}
	if want := "2024-01-01T00:00:00Z stdout: a\ufffdb"; len(got.Logs) != 1 || got.Logs[0] != want {
		t.Errorf("logs = %q, want [%q]", got.Logs, want)
	}
	var res map[string]string
	if err := json.Unmarshal(got.Response.Result, &res); err != nil {
		t.Fatalf("result %s: %v", got.Response.Result, err)
	}
	if want := map[string]string{"s": "x\ufffdy", "pair": "\U0001F600", "nul": "\ufffd"}; !maps.Equal(res, want) {
		t.Errorf("result = %q, want %q", res, want)
	}
	a := whisk.Action{Namespace: "ns", Name: "nul", Exec: whisk.Exec{Kind: "python:3", Code: "print('\x00')"}}
	if _, err := s.PutAction(ctx, a, 0); err != nil {
		t.Fatalf("PutAction with NUL in code: %v", err)
	}
	if got, err := s.GetAction(ctx, "ns", "nul"); err != nil || got.Exec.Code != "print('\ufffd')" {
		t.Errorf("code = %q, %v", got.Exec.Code, err)
	}
}

// ---- errors ----

// freePort returns a loopback port where nothing listens.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestOpenUnreachable(t *testing.T) {
	port := freePort(t)
	url := fmt.Sprintf("postgres://eddy:secret-pw@127.0.0.1:%d/eddy?sslmode=disable", port)
	began := time.Now()
	s, err := Open(t.Context(), url, nil)
	if err == nil {
		s.Close()
		t.Fatal("Open of an unreachable server succeeded")
	}
	if d := time.Since(began); d > 6*time.Second {
		t.Errorf("Open took %v to fail", d)
	}
	if whisk.KindOf(err) != whisk.Unavailable {
		t.Errorf("kind = %v, want unavailable (%v)", whisk.KindOf(err), err)
	}
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("cannot connect to 127.0.0.1:%d", port)) || strings.Contains(msg, "secret-pw") {
		t.Errorf("message = %q: want the server named and no password", msg)
	}
}

func TestOpenTimesOut(t *testing.T) {
	// A listener that accepts and never answers: the connect timeout of
	// the URL bounds Open.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	url := fmt.Sprintf("postgres://eddy@%s/eddy?sslmode=disable&connect_timeout=1", l.Addr())
	began := time.Now()
	s, err := Open(t.Context(), url, nil)
	if err == nil {
		s.Close()
		t.Fatal("Open of a silent server succeeded")
	}
	if d := time.Since(began); d > 4*time.Second {
		t.Errorf("Open took %v to fail, want about 1s", d)
	}
	if k := whisk.KindOf(err); k != whisk.Unavailable && k != whisk.Timeout {
		t.Errorf("kind = %v (%v), want unavailable or timeout", k, err)
	}
}

func TestOpenBadURL(t *testing.T) {
	s, err := Open(t.Context(), "postgres://u:pw-here@127.0.0.1:notaport/db", nil)
	if err == nil {
		s.Close()
		t.Fatal("Open of a bad URL succeeded")
	}
	if whisk.KindOf(err) != whisk.Invalid || strings.Contains(err.Error(), "pw-here") {
		t.Errorf("err = %v (kind %v), want invalid without the password", err, whisk.KindOf(err))
	}
}

func TestErrorKinds(t *testing.T) {
	srv := pgtest.NewServer(t)
	url := srv.NewDatabase(t)
	s := openT(t, url)
	defer s.Close()
	ctx := t.Context()
	if _, err := s.PutAction(ctx, whisk.Action{Namespace: "ns", Name: "locked"}, 0); err != nil {
		t.Fatal(err)
	}

	// Hold the action's row lock from another session so that writes wait.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT 1 FROM actions WHERE name = 'locked' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	t.Run("context deadline", func(t *testing.T) {
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := s.PutAction(dctx, whisk.Action{Namespace: "ns", Name: "locked"}, 1)
		if whisk.KindOf(err) != whisk.Timeout {
			t.Fatalf("kind = %v (%v), want timeout", whisk.KindOf(err), err)
		}
		// The pool recovers the connection.
		if _, err := s.GetAction(ctx, "ns", "locked"); err != nil {
			t.Fatalf("after a timeout: %v", err)
		}
	})
	t.Run("statement timeout", func(t *testing.T) {
		st := openT(t, url+"&options=-c%20statement_timeout%3D200")
		defer st.Close()
		_, err := st.PutAction(ctx, whisk.Action{Namespace: "ns", Name: "locked"}, 1)
		if whisk.KindOf(err) != whisk.Timeout {
			t.Fatalf("kind = %v (%v), want timeout", whisk.KindOf(err), err)
		}
	})
	t.Run("not found wraps", func(t *testing.T) {
		_, err := s.GetAction(ctx, "ns", "none")
		if whisk.KindOf(err) != whisk.NotFound || whisk.UserMessage(err) != whisk.MsgNotFound || !errors.Is(err, pgx.ErrNoRows) {
			t.Fatalf("err = %v, want NotFound wrapping pgx.ErrNoRows", err)
		}
	})
	t.Run("unique violation", func(t *testing.T) {
		// Not reachable through the Store's upserts; map it directly.
		_, err := s.pool.Exec(ctx, `INSERT INTO actions (namespace, name, rev, updated, doc) VALUES ('ns', 'locked2', 1, 0, '{}'), ('ns', 'locked2', 1, 0, '{}')`)
		err = dbErr("test", err)
		if whisk.KindOf(err) != whisk.Conflict || whisk.UserMessage(err) != whisk.MsgExists {
			t.Fatalf("err = %v (kind %v), want conflict", err, whisk.KindOf(err))
		}
	})
	tx.Rollback(ctx)

	t.Run("closed store", func(t *testing.T) {
		c := openT(t, url)
		c.Close()
		_, err := c.GetAction(ctx, "ns", "locked")
		if whisk.KindOf(err) != whisk.Internal {
			t.Fatalf("kind = %v (%v), want internal", whisk.KindOf(err), err)
		}
		var we *whisk.Error
		if !errors.As(err, &we) || we.Err == nil || we.Msg != "" {
			t.Fatalf("driver error not wrapped as the cause: %#v", err)
		}
	})
	t.Run("server down, then back", func(t *testing.T) {
		srv.Stop()
		_, err := s.GetAction(ctx, "ns", "locked")
		if whisk.KindOf(err) != whisk.Unavailable {
			t.Fatalf("with the server down: kind = %v (%v), want unavailable", whisk.KindOf(err), err)
		}
		srv.Restart(t)
		// The pool replaces its broken connections: within a few tries
		// the store works again, and every failure meanwhile says the
		// server is unavailable.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := s.GetAction(ctx, "ns", "locked")
			if err == nil {
				break
			}
			if whisk.KindOf(err) != whisk.Unavailable {
				t.Fatalf("after restart: kind = %v (%v), want unavailable", whisk.KindOf(err), err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("store did not recover after the server restarted: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// A server that does not answer (here: every table locked by another
// session, as good as a hung server for the Store) makes each operation
// fail with kind Timeout after the Store's operation timeout, even when
// the caller's context has no deadline; then the Store works again.
func TestOperationTimeout(t *testing.T) {
	url := pgtest.Start(t)
	s := openT(t, url)
	defer s.Close()
	ctx := t.Context()
	if _, err := s.PutAction(ctx, whisk.Action{Namespace: "ns", Name: "a"}, 0); err != nil {
		t.Fatal(err)
	}
	s.opTimeout = 300 * time.Millisecond

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE actions, activations, identities IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func(context.Context) error{
		"GetAction": func(ctx context.Context) error { _, err := s.GetAction(ctx, "ns", "a"); return err },
		"PutActivation": func(ctx context.Context) error {
			return s.PutActivation(ctx, whisk.Activation{ActivationID: "x", Namespace: "ns", Name: "a"})
		},
		"IdentityByUUID": func(ctx context.Context) error { _, err := s.IdentityByUUID(ctx, "u"); return err },
		"CountActivations": func(ctx context.Context) error {
			_, err := s.CountActivations(ctx, "ns", store.ActivationFilter{})
			return err
		},
	} {
		began := time.Now()
		err := call(context.Background())
		if took := time.Since(began); whisk.KindOf(err) != whisk.Timeout || took > 5*time.Second {
			t.Errorf("%s on a hung server: %v (kind %v) after %v, want a timeout after about 300ms", name, err, whisk.KindOf(err), took)
		}
	}
	// An earlier deadline of the caller's still wins.
	s.opTimeout = time.Minute
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	if _, err := s.GetAction(dctx, "ns", "a"); whisk.KindOf(err) != whisk.Timeout || time.Since(began) > 5*time.Second {
		t.Errorf("with the caller's deadline: %v after %v", err, time.Since(began))
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAction(ctx, "ns", "a"); err != nil {
		t.Fatalf("once the server answers again: %v", err)
	}
}

func TestInvalidRevision(t *testing.T) {
	s := openT(t, pgtest.Start(t))
	defer s.Close()
	_, err := s.PutAction(t.Context(), whisk.Action{Namespace: "ns", Name: "a"}, -1)
	if whisk.KindOf(err) != whisk.Invalid {
		t.Fatalf("kind = %v (%v), want invalid", whisk.KindOf(err), err)
	}
}

func BenchmarkPutActivation(b *testing.B) {
	url := pgtest.Start(b)
	s, err := Open(b.Context(), url, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	i := 0
	for b.Loop() {
		i++
		rec := whisk.Activation{Namespace: "ns", Name: "a", ActivationID: whisk.ActivationID(fmt.Sprintf("%032x", i)), Start: int64(i)}
		if err := s.PutActivation(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMigrateNamespaceLimits opens a database of schema version 1, where
// limits were stored on each identity, and checks that migration 2 moves
// them to the namespace.
func TestMigrateNamespaceLimits(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Shared(t).NewDatabase(t)
	all := migrations
	migrations = all[:1]
	s, err := Open(ctx, url, nil)
	migrations = all
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO identities (uuid, namespace, subject, key, limits) VALUES
		('u1', 'ns', 'a', 'k1', '{"invocationsPerMinute":5,"concurrentInvocations":2}'),
		('u2', 'ns', 'b', 'k2', '{"invocationsPerMinute":5,"concurrentInvocations":2}'),
		('u3', 'plain', 'c', 'k3', '{}')`); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openT(t, url)
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
