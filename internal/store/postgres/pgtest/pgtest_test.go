package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestShared(t *testing.T) {
	a, b := Shared(t), Shared(t)
	if a != b || !a.shared {
		t.Fatal("Shared under Main returned different servers")
	}
	var url string
	t.Run("sub", func(t *testing.T) {
		url = Start(t)
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close(context.Background())
	})
	// The database went with its test; the server stays.
	conn, err := pgx.Connect(context.Background(), url)
	if err == nil {
		conn.Close(context.Background())
		t.Errorf("database %s still there after its test", url)
	}
	if _, err := pgx.Connect(context.Background(), a.URL("postgres")); err != nil {
		t.Errorf("shared server gone: %v", err)
	}
}

func TestNewServer(t *testing.T) {
	s := NewServer(t)
	u1, u2 := s.NewDatabase(t), s.NewDatabase(t)
	if u1 == u2 {
		t.Fatalf("two databases with one URL %s", u1)
	}
	ctx := context.Background()
	for _, u := range []string{u1, u2} {
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d tables, %v; want an empty database", u, n, err)
		}
		conn.Close(ctx)
	}
	// The server stops with its test.
	s.Stop()
	select {
	case <-s.done:
	default:
		t.Fatal("server still running after stop")
	}
	if _, err := pgx.Connect(ctx, u1); err == nil {
		t.Fatal("connected to a stopped server")
	}
}
