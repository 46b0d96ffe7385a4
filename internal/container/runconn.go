package container

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// runConns is the client's own pool of HTTP/1.1 connections for /run, the
// hot path: a call writes the request and reads the answer on the calling
// goroutine, without net/http's per-connection read and write goroutines
// (two goroutine hand-offs per call). /init stays on net/http.
type runConns struct {
	addr   string
	dialer net.Dialer

	mu   sync.Mutex
	idle []*runConn
}

const maxIdleRunConns = 4

type runConn struct {
	nc  net.Conn
	br  *bufio.Reader
	buf []byte // the request being written, reused
}

func (p *runConns) get(ctx context.Context) (*runConn, bool, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		rc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return rc, true, nil
	}
	p.mu.Unlock()
	nc, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, false, err
	}
	return &runConn{nc: nc, br: bufio.NewReaderSize(nc, 4096)}, false, nil
}

func (p *runConns) put(rc *runConn) {
	p.mu.Lock()
	if len(p.idle) < maxIdleRunConns {
		p.idle = append(p.idle, rc)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	rc.nc.Close()
}

// closeIdle closes the idle connections.
func (p *runConns) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, rc := range idle {
		rc.nc.Close()
	}
}

// notSentError is a request that failed before any of its bytes were
// written: sending it again on a new connection cannot run it twice.
type notSentError struct{ err error }

func (e notSentError) Error() string { return "request not sent: " + e.err.Error() }
func (e notSentError) Unwrap() error { return e.err }

// post sends body to path and reads the whole answer. It runs the request
// at most once: a reused connection the runtime closed while it sat idle
// is found before the request is written (closedByPeer) and replaced, and
// the request is sent again only when not one byte of it was written. Once
// it was written, an end of the stream is the runtime's answer (it exited,
// or crashed while running), never a reason to send it again: the runtime
// may have read it, and a /run must not run twice.
//
// traceparent, when it is a well-formed W3C traceparent, is sent as the
// request's traceparent header.
func (p *runConns) post(ctx context.Context, path string, body []byte, traceparent string) (Response, error) {
	for {
		rc, reused, err := p.get(ctx)
		if err != nil {
			return Response{}, err
		}
		if reused && closedByPeer(rc.nc) {
			rc.nc.Close()
			continue
		}
		resp, keep, err := p.roundTrip(ctx, rc, path, body, traceparent)
		if keep {
			p.put(rc)
		} else {
			rc.nc.Close()
		}
		var ns notSentError
		if errors.As(err, &ns) {
			if reused {
				continue
			}
			err = ns.err
		}
		return resp, err
	}
}

// roundTrip writes the request and reads the answer on rc. A failure
// before any byte was written is a notSentError.
func (p *runConns) roundTrip(ctx context.Context, rc *runConn, path string, body []byte, traceparent string) (resp Response, keep bool, err error) {
	if err := ctx.Err(); err != nil {
		return Response{}, true, err
	}
	// An ended ctx interrupts the reads and writes under way; the
	// connection is then not reused.
	stop := context.AfterFunc(ctx, func() { rc.nc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() {
			keep = false
		}
	}()

	b := rc.buf[:0]
	b = append(b, "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, p.addr...)
	if whisk.TraceIDOf(traceparent) != "" {
		// Only the fields of version 00: the header stays within what
		// TraceIDOf checked (lowercase hex and dashes).
		b = append(b, "\r\nTraceparent: "...)
		b = append(b, traceparent[:55]...)
	}
	b = append(b, "\r\nUser-Agent: Go-http-client/1.1\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	if cap(b) <= 64<<10 {
		rc.buf = b
	}
	if n, err := rc.nc.Write(b); err != nil {
		if n == 0 {
			return Response{}, false, notSentError{err}
		}
		return Response{}, false, err
	}
	hresp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		return Response{}, false, err
	}
	var out []byte
	if n := hresp.ContentLength; n >= 0 && n <= 64<<20 {
		out = make([]byte, n)
		_, err = io.ReadFull(hresp.Body, out)
	} else {
		out, err = io.ReadAll(hresp.Body)
	}
	hresp.Body.Close()
	if err != nil {
		return Response{}, false, err
	}
	resp = Response{Status: hresp.StatusCode, Body: out}
	if h := hresp.Header[InlineLogsHeader]; len(h) > 0 {
		resp.Body, resp.Logs, resp.Inline = splitInline(h[0], out)
	}
	return resp, !hresp.Close, nil
}

// ClosedWhileIdle reports whether err, met on a reused keep-alive
// connection before any byte of the answer, says the peer had closed the
// connection while it sat idle: the end of the stream, or a network error
// other than a timeout (a reset, a refused or closed connection). A client
// whose requests may be sent twice (the bench's load generator) then sends
// it again on a new connection; /run does not (runConns.post).
func ClosedWhileIdle(err error) bool {
	var oe *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &oe) && !oe.Timeout()
}
