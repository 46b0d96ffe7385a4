package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
)

// h1Conn is the load generator's HTTP/1.1 client: one keep-alive TCP
// connection (TLS for an https API host), a request written as pre-built
// bytes and its answer read on the calling goroutine, the whole body read
// into a reused buffer. Every call is still a real, complete HTTP exchange,
// but the generator's own CPU per call is a small fraction of net/http's:
// no request or header maps, no URL parsing, no base64 per call, no
// per-connection read and write goroutines to hand each call to and back
// (net/http's two goroutine switches per call), no allocation on the path.
// The load generator shares the machine's cores with what it measures, so
// what it spends is taken from the platform and the runtimes.
//
// It is not internal/container's /run pool (runConns): that one serves the
// invoker, with the runtime protocol's fixed headers, a pool shared by
// goroutines and a ctx hook per call; this one is owned by one worker at a
// time, sends any request (the API's Authorization and query) and is
// interrupted once per run rather than per call.
//
// A connection the server closed while idle is found before any byte of an
// answer (container.ClosedWhileIdle) and the
// request is sent again on a new connection, once. An
// answer with "Connection: close", or any error, closes the connection;
// the next call dials again.
//
// do, drop and close belong to one goroutine at a time; interrupt may be
// called from any goroutine.
type h1Conn struct {
	addr string      // host:port
	tls  *tls.Config // nil for plain HTTP
	ctx  context.Context
	stop func() bool // unregisters the interrupt on ctx's end

	mu      sync.Mutex // guards nc's replacement against interrupt
	nc      net.Conn   // nil until dialled, and after an error
	stopped bool

	br   *bufio.Reader
	body []byte // the last answer's body; valid until the next call
}

// loadGenClient describes h1Conn in the results' configuration.
const loadGenClient = "minimal HTTP/1.1 client for the warm and throughput calls (Eddy and floors); one keep-alive connection per worker; request pre-built; status and result byte-checked"

// maxBody bounds an answer's body.
const maxBody = 64 << 20

// errStopped is a call after interrupt.
var errStopped = errors.New("load generator connection interrupted")

// newH1Conn returns a client of addr; nothing is dialled yet. When ctx
// ends, the call under way fails at once, and every later one.
func newH1Conn(ctx context.Context, addr string, tlsCfg *tls.Config) *h1Conn {
	c := &h1Conn{addr: addr, tls: tlsCfg, ctx: ctx}
	c.stop = context.AfterFunc(ctx, c.interrupt)
	return c
}

// close closes the connection for good.
func (c *h1Conn) close() {
	c.stop()
	c.interrupt()
	c.drop()
}

// interrupt makes the call under way, if any, and every later one fail.
func (c *h1Conn) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.nc != nil {
		c.nc.SetDeadline(time.Unix(1, 0))
	}
}

// drop closes the connection; the next call dials again.
func (c *h1Conn) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

func (c *h1Conn) dial() error {
	d := net.Dialer{Timeout: 10 * time.Second}
	nc, err := d.DialContext(c.ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	if c.tls != nil {
		tc := tls.Client(nc, c.tls)
		if err := tc.HandshakeContext(c.ctx); err != nil {
			nc.Close()
			return err
		}
		nc = tc
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		nc.Close()
		return errStopped
	}
	c.nc = nc
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, 4096)
	} else {
		c.br.Reset(nc)
	}
	return nil
}

// errStale is a reused connection the server had closed while idle.
var errStale = errors.New("idle connection closed by the server")

// do writes req, a whole HTTP/1.1 request, and reads the whole answer:
// its status and body (valid until the next call).
func (c *h1Conn) do(req []byte) (status int, body []byte, err error) {
	for attempt := 0; ; attempt++ {
		reused := c.nc != nil
		if !reused {
			if err := c.dial(); err != nil {
				return 0, nil, err
			}
		}
		status, body, err = c.roundTrip(req, reused && attempt == 0)
		if err != nil {
			c.drop()
			if errors.Is(err, errStale) {
				continue
			}
		}
		return status, body, err
	}
}

func (c *h1Conn) roundTrip(req []byte, mayBeStale bool) (int, []byte, error) {
	if _, err := c.nc.Write(req); err != nil {
		if mayBeStale && !c.isStopped() {
			return 0, nil, errStale
		}
		return 0, nil, err
	}
	if _, err := c.br.Peek(1); err != nil {
		if mayBeStale && !c.isStopped() && container.ClosedWhileIdle(err) {
			return 0, nil, errStale
		}
		return 0, nil, err
	}
	status, keep, err := c.readResponse()
	if err != nil {
		return 0, nil, err
	}
	if !keep {
		c.drop()
	}
	return status, c.body, nil
}

func (c *h1Conn) isStopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}

// readResponse reads one answer (after any 1xx interim ones) into c.body
// and reports its status and whether the connection may be used again.
func (c *h1Conn) readResponse() (status int, keep bool, err error) {
	for {
		line, err := c.line()
		if err != nil {
			return 0, false, err
		}
		// HTTP/1.x SSS[ reason]
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
			return 0, false, fmt.Errorf("malformed status line %q", line)
		}
		status = 0
		for _, d := range line[9:12] {
			if d < '0' || d > '9' {
				return 0, false, fmt.Errorf("malformed status line %q", line)
			}
			status = status*10 + int(d-'0')
		}
		keep = line[7] != '0' // HTTP/1.0 closes unless told otherwise
		length, chunked := int64(-1), false
		for {
			h, err := c.line()
			if err != nil {
				return 0, false, err
			}
			if len(h) == 0 {
				break
			}
			name, val, ok := bytes.Cut(h, []byte(":"))
			if !ok {
				return 0, false, fmt.Errorf("malformed header line %q", h)
			}
			val = bytes.TrimSpace(val)
			switch {
			case bytes.EqualFold(name, []byte("Content-Length")):
				n, err := strconv.ParseInt(string(val), 10, 64)
				if err != nil || n < 0 {
					return 0, false, fmt.Errorf("bad Content-Length %q", val)
				}
				length = n
			case bytes.EqualFold(name, []byte("Transfer-Encoding")):
				chunked = hasToken(val, "chunked")
			case bytes.EqualFold(name, []byte("Connection")):
				if hasToken(val, "close") {
					keep = false
				} else if hasToken(val, "keep-alive") {
					keep = true
				}
			}
		}
		if status >= 100 && status < 200 && status != 101 {
			continue // interim: the answer follows
		}
		c.body = c.body[:0]
		switch {
		case status == 204 || status == 304 || status == 101:
		case chunked:
			err = c.readChunked()
		case length >= 0:
			err = c.readN(length)
		default: // the body runs to the end of the connection
			err = c.readToEOF()
			keep = false
		}
		return status, keep && err == nil, err
	}
}

// line reads one header line without its CR LF. It is valid until the
// next read.
func (c *h1Conn) line() ([]byte, error) {
	l, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("header line too long")
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	l = l[:len(l)-1]
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	}
	return l, nil
}

// readN appends n bytes of the answer to c.body.
func (c *h1Conn) readN(n int64) error {
	if int64(len(c.body))+n > maxBody {
		return fmt.Errorf("answer body over %d bytes", maxBody)
	}
	old := len(c.body)
	c.body = grow(c.body, int(n))
	_, err := io.ReadFull(c.br, c.body[old:])
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n+len(b)/2)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// readChunked reads a chunked body (RFC 9112 §7.1) into c.body.
func (c *h1Conn) readChunked() error {
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(l, ';'); i >= 0 {
			l = l[:i] // chunk extensions
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(l)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("bad chunk size %q", l)
		}
		if n == 0 {
			for { // trailer section up to its empty line
				t, err := c.line()
				if err != nil {
					return err
				}
				if len(t) == 0 {
					return nil
				}
			}
		}
		if err := c.readN(n); err != nil {
			return err
		}
		if l, err := c.line(); err != nil || len(l) != 0 {
			if err == nil {
				err = errors.New("chunk not followed by CR LF")
			}
			return err
		}
	}
}

// readToEOF reads the rest of the connection into c.body.
func (c *h1Conn) readToEOF() error {
	for {
		if len(c.body) >= maxBody {
			return fmt.Errorf("answer body over %d bytes", maxBody)
		}
		old := len(c.body)
		c.body = grow(c.body, 4096)
		n, err := c.br.Read(c.body[old:])
		c.body = c.body[:old+n]
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// hasToken reports whether the comma-separated header value v holds tok
// (case-insensitive).
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		if bytes.EqualFold(bytes.TrimSpace(t), []byte(tok)) {
			return true
		}
	}
	return false
}

// buildRequest returns a whole POST request with a JSON body, as bytes to
// send as they are. header lines are "Name: value", without CR LF.
func buildRequest(host, target string, header []string, body []byte) []byte {
	b := make([]byte, 0, 256+len(body))
	b = append(b, "POST "...)
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for _, h := range header {
		b = append(b, h...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// isRanBy reports whether body is what the benchmark actions return, a
// JSON object with a positive "pid" (and a "host"), without decoding it:
// a byte check, cheap enough for the load generator.
func isRanBy(body []byte) bool {
	b := bytes.TrimSpace(body)
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' || !bytes.Contains(b, []byte(`"host"`)) {
		return false
	}
	i := bytes.Index(b, []byte(`"pid"`))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(b[i+len(`"pid"`):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	return len(rest) > 0 && rest[0] >= '1' && rest[0] <= '9'
}

// checkRanBy turns one load-generator call into an error unless it got a
// 200 with a benchmark action's result (see isRanBy).
func checkRanBy(what string, status int, body []byte, err error) error {
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case status != 200:
		return fmt.Errorf("%s: status %d: %.200s", what, status, body)
	case !isRanBy(body):
		return fmt.Errorf("%s: unexpected result %.200s", what, body)
	}
	return nil
}
