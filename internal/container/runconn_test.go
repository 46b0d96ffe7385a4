package container

import (
	"bufio"
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

// rawRuntime serves /run on raw TCP: every request is counted once fully
// read; the second request on the first connection is read and then the
// connection is closed without an answer, as a runtime that crashed while
// running it would. Other requests get a 200.
func rawRuntime(t *testing.T) (addr string, runs *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	runs = new(atomic.Int32)
	var conns atomic.Int32
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			first := conns.Add(1) == 1
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				for n := 1; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if _, err := io.Copy(io.Discard, req.Body); err != nil {
						return
					}
					runs.Add(1)
					if first && n == 2 {
						return // read it, then died
					}
					if _, err := io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String(), runs
}

// A /run the runtime read before its connection closed is not sent again:
// it fails, and the runtime saw it once.
func TestRunAtMostOnceAfterRuntimeReadIt(t *testing.T) {
	addr, runs := rawRuntime(t)
	c := NewClient(addr)
	defer c.Close()
	if _, err := c.Run(context.Background(), RunRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(context.Background(), RunRequest{}); !IsTransport(err) {
		t.Fatalf("second run: err = %v, want a TransportError (the runtime read it and closed)", err)
	}
	if n := runs.Load(); n != 2 {
		t.Fatalf("the runtime read %d requests, want 2: the second /run was sent again", n)
	}
	// The client goes on with a new connection.
	if _, err := c.Run(context.Background(), RunRequest{}); err != nil {
		t.Fatalf("third run: %v", err)
	}
	if n := runs.Load(); n != 3 {
		t.Fatalf("the runtime read %d requests, want 3", n)
	}
}

// A well-formed traceparent goes to the runtime as the /run request's
// traceparent header; a malformed one (here with a header injection) is
// left out, and the body never carries it.
func TestRunSendsTraceparent(t *testing.T) {
	got := make(chan string, 2)
	srv, _ := runtimeServer(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Traceparent")
		echo(w, r)
	})
	c := NewClient(strings.TrimPrefix(srv.URL, "http://"))
	defer c.Close()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, c2 := range []struct{ sent, want string }{
		{tp, tp},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX-Evil: 1", ""},
	} {
		resp, err := c.Run(context.Background(), RunRequest{ActivationID: "a", Value: []byte(`{}`), TraceParent: c2.sent})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 200 || strings.Contains(string(resp.Body), "4bf92f35") {
			t.Fatalf("answer %d %s", resp.Status, resp.Body)
		}
		if h := <-got; h != c2.want {
			t.Errorf("sent %q: runtime got traceparent %q, want %q", c2.sent, h, c2.want)
		}
	}
}
