package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server is a net/http server on loopback that counts its connections.
func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
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

func testConn(t *testing.T, ctx context.Context, url string) (*h1Conn, string) {
	t.Helper()
	addr := strings.TrimPrefix(url, "http://")
	c := newH1Conn(ctx, addr, nil)
	t.Cleanup(c.close)
	return c, addr
}

// The request goes out as built, the answer's status and whole body come
// back, and sequential calls share one connection.
func TestH1ConnRoundTripKeepsAlive(t *testing.T) {
	srv, conns := server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.RequestURI() != "/x?a=1" || r.Header.Get("Authorization") != "Basic abc" ||
			r.Header.Get("Content-Type") != "application/json" || string(b) != `{"k":1}` {
			http.Error(w, fmt.Sprintf("bad request %s %s %v %q", r.Method, r.URL, r.Header, b), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"pid":%d,"host":"h"}`, 7)
	})
	c, addr := testConn(t, context.Background(), srv.URL)
	req := buildRequest(addr, "/x?a=1", []string{"Authorization: Basic abc"}, []byte(`{"k":1}`))
	for i := 0; i < 5; i++ {
		status, body, err := c.do(req)
		if err != nil || status != 200 || string(body) != `{"pid":7,"host":"h"}` {
			t.Fatalf("call %d: %d %q %v", i, status, body, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential calls, want 1", n)
	}
}

// A non-2xx status is reported with its body, and the connection is kept.
func TestH1ConnStatus(t *testing.T) {
	srv, conns := server(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(`{"error":"boom"}`))
	})
	c, addr := testConn(t, context.Background(), srv.URL)
	req := buildRequest(addr, "/", nil, []byte("{}"))
	for i := 0; i < 2; i++ {
		status, body, err := c.do(req)
		if err != nil || status != http.StatusBadGateway || string(body) != `{"error":"boom"}` {
			t.Fatalf("%d %q %v", status, body, err)
		}
		if err := checkRanBy("call", status, body, err); err == nil || !strings.Contains(err.Error(), "status 502") {
			t.Errorf("checkRanBy of a 502: %v", err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// A chunked body (net/http chunks an answer it does not know the length
// of) is read whole, and the connection stays usable.
func TestH1ConnChunked(t *testing.T) {
	big := strings.Repeat("0123456789", 2000) // over net/http's and h1Conn's buffers
	srv, conns := server(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for i := 0; i < 3; i++ {
			_, _ = w.Write([]byte(big))
			w.(http.Flusher).Flush()
		}
	})
	c, addr := testConn(t, context.Background(), srv.URL)
	req := buildRequest(addr, "/", nil, []byte("{}"))
	for i := 0; i < 3; i++ {
		status, body, err := c.do(req)
		if err != nil || status != 200 || string(body) != big+big+big {
			t.Fatalf("call %d: %d, %d bytes, %v", i, status, len(body), err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// rawServer answers each request read on a connection with the next of
// answers (cycling), as raw bytes, and closes the connection after any
// answer for which closeAfter says so.
func rawServer(t *testing.T, answers []string, closeAfter func(i int) bool) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns, served atomic.Int32
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					i := int(served.Add(1)) - 1
					if _, err := nc.Write([]byte(answers[i%len(answers)])); err != nil {
						return
					}
					if closeAfter(i) {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), &conns
}

// Chunk extensions, a trailer, 1xx interim answers, HTTP/1.0 and a body
// delimited by the end of the connection are all read right; the
// connection is dialled again after an answer that closes it.
func TestH1ConnFraming(t *testing.T) {
	cases := []struct {
		name, answer, body string
		status             int
		closes             bool
	}{
		{"chunked with extension and trailer", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n", "abcde", 200, false},
		{"interim 100 then answer", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", "ok", 201, false},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\n", "", 204, false},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nz", "z", 200, true},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\ny", "y", 200, true},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nk", "k", 200, false},
		{"to the end", "HTTP/1.1 200 OK\r\n\r\nuntil eof", "until eof", 200, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := rawServer(t, []string{tc.answer}, func(int) bool { return tc.closes })
			c := newH1Conn(context.Background(), addr, nil)
			defer c.close()
			req := buildRequest(addr, "/", nil, []byte("{}"))
			for i := 0; i < 3; i++ {
				status, body, err := c.do(req)
				if err != nil || status != tc.status || string(body) != tc.body {
					t.Fatalf("call %d: %d %q %v", i, status, body, err)
				}
			}
			want := int32(1)
			if tc.closes {
				want = 3
			}
			if n := conns.Load(); n != want {
				t.Errorf("%d connections for 3 calls, want %d", n, want)
			}
		})
	}
}

// A malformed or cut answer is an error, and the next call dials anew.
func TestH1ConnBadAnswers(t *testing.T) {
	for _, answer := range []string{
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"SPDY 200\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
	} {
		addr, conns := rawServer(t, []string{answer}, func(int) bool { return true })
		c := newH1Conn(context.Background(), addr, nil)
		req := buildRequest(addr, "/", nil, []byte("{}"))
		for i := 0; i < 2; i++ {
			if status, body, err := c.do(req); err == nil {
				t.Errorf("%q: call %d: no error (%d %q)", answer, i, status, body)
			}
		}
		if n := conns.Load(); n != 2 {
			t.Errorf("%q: %d connections for 2 failed calls, want 2", answer, n)
		}
		c.close()
	}
}

// A connection the server closed while idle is replaced, and the request
// sent again: not an error.
func TestH1ConnReconnectsStale(t *testing.T) {
	ok := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	// The server closes each connection after its answer without saying
	// so: the client finds out on its next call.
	addr, conns := rawServer(t, []string{ok}, func(int) bool { return true })
	c := newH1Conn(context.Background(), addr, nil)
	defer c.close()
	req := buildRequest(addr, "/", nil, []byte("{}"))
	for i := 0; i < 4; i++ {
		if i > 0 { // let the close arrive, as an idle connection's would
			time.Sleep(20 * time.Millisecond)
		}
		status, body, err := c.do(req)
		if err != nil || status != 200 || string(body) != "ok" {
			t.Fatalf("call %d: %d %q %v", i, status, body, err)
		}
	}
	if n := conns.Load(); n != 4 {
		t.Errorf("%d connections for 4 calls each closed after, want 4", n)
	}
}

// A refused connection is an error, not a retry loop.
func TestH1ConnRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newH1Conn(context.Background(), addr, nil)
	defer c.close()
	if _, _, err := c.do(buildRequest(addr, "/", nil, nil)); err == nil {
		t.Fatal("no error from a closed port")
	}
}

// Ending ctx interrupts a call waiting for its answer, and fails the
// later ones at once.
func TestH1ConnInterrupted(t *testing.T) {
	release := make(chan struct{})
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	c, addr := testConn(t, ctx, srv.URL)
	req := buildRequest(addr, "/", nil, []byte("{}"))
	done := make(chan error, 1)
	go func() {
		_, _, err := c.do(req)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // most likely waiting for the answer by now; either way it must fail
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("an interrupted call succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call was not interrupted")
	}
	if _, _, err := c.do(req); !errors.Is(err, errStopped) && !errors.Is(err, context.Canceled) {
		t.Errorf("a call after the interrupt: %v, want errStopped", err)
	}
}

func TestIsRanBy(t *testing.T) {
	for body, want := range map[string]bool{
		`{"pid":123,"host":"h"}`:                    true,
		`{"host":"h","pid":9}`:                      true,
		"{\n  \"host\": \"h\",\n  \"pid\": 42\n}\n": true,
		`{"pid":0,"host":"h"}`:                      false,
		`{"pid":-1,"host":"h"}`:                     false,
		`{"pid":"1","host":"h"}`:                    false,
		`{"pid":1}`:                                 false,
		`{"error":"boom"}`:                          false,
		`[{"pid":1,"host":"h"}]`:                    false,
		``:                                          false,
	} {
		if got := isRanBy([]byte(body)); got != want {
			t.Errorf("isRanBy(%q) = %v, want %v", body, got, want)
		}
	}
}

// The floor's request is the invoker's /run body with a new activation id
// per call.
func TestFloorConnActivationIDs(t *testing.T) {
	var (
		mu  sync.Mutex
		ids []string
	)
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s := string(b)
		i := strings.Index(s, `"activation_id":"`)
		if r.URL.Path != "/run" || i < 0 || !strings.Contains(s, `"action_name":"/guest/a"`) {
			http.Error(w, "bad /run "+s, http.StatusBadRequest)
			return
		}
		mu.Lock()
		ids = append(ids, s[i+17:i+17+32])
		mu.Unlock()
		_, _ = w.Write([]byte(`{"pid":5,"host":"h"}`))
	})
	f := &floorConn{d: &direct{name: "a", seq: 3}, id: []byte("3")}
	f.conn, _ = testConn(t, context.Background(), srv.URL)
	f.prepare(time.Now().Add(time.Minute))
	for i := 0; i < 18; i++ {
		id, err := f.run()
		if err != nil || string(id) != "3" {
			t.Fatalf("run %d: %q %v", i, id, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 18 {
		t.Fatalf("%d requests, want 18", len(ids))
	}
	if ids[0] != activationID(3, 1) || ids[17] != activationID(3, 18) {
		t.Errorf("activation ids %s … %s, want %s … %s", ids[0], ids[17], activationID(3, 1), activationID(3, 18))
	}
}
