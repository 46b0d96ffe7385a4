package container

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// runtimeServer answers /run with the body it got, and counts connections.
func runtimeServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	if r.URL.Path != "/run" || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request line or headers", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func TestRunReusesConnection(t *testing.T) {
	srv, conns := runtimeServer(t, echo)
	c := NewClient(strings.TrimPrefix(srv.URL, "http://"))
	defer c.Close()
	for i := 0; i < 5; i++ {
		resp, err := c.Run(context.Background(), RunRequest{ActivationID: "a", Value: []byte(`{"i":1}`)})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 200 || !strings.HasPrefix(string(resp.Body), `{"value":{"i":1},`) {
			t.Fatalf("answer %d %s", resp.Status, resp.Body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential runs, want 1", n)
	}
}

// A connection the runtime closed while idle is replaced, not an error.
func TestRunRetriesStaleIdleConnection(t *testing.T) {
	srv, conns := runtimeServer(t, echo)
	c := NewClient(strings.TrimPrefix(srv.URL, "http://"))
	defer c.Close()
	if _, err := c.Run(context.Background(), RunRequest{}); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections()
	resp, err := c.Run(context.Background(), RunRequest{})
	if err != nil {
		t.Fatalf("run after the runtime closed the idle connection: %v", err)
	}
	if resp.Status != 200 {
		t.Fatalf("status %d", resp.Status)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// An ended ctx ends the call with a TransportError that carries it.
func TestRunContextDeadline(t *testing.T) {
	release := make(chan struct{})
	srv, _ := runtimeServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c := NewClient(strings.TrimPrefix(srv.URL, "http://"))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Run(ctx, RunRequest{})
	if !IsTransport(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a TransportError with context.DeadlineExceeded", err)
	}
}

// No runtime listening: a TransportError.
func TestRunRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := NewClient(addr)
	defer c.Close()
	if _, err := c.Run(context.Background(), RunRequest{}); !IsTransport(err) {
		t.Fatalf("err = %v, want a TransportError", err)
	}
}
