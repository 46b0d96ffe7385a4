package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// InitRequest is the "value" of a runtime's POST /init.
type InitRequest struct {
	Name   string `json:"name"`
	Main   string `json:"main"`
	Binary bool   `json:"binary"`
	Code   string `json:"code"`
	// Env holds the __OW_* variables of the first activation and the
	// parameters annotated init:true; all values are strings.
	Env map[string]string `json:"env,omitempty"`
	// Concurrency > 1 asks Eddy's runtime for concurrent mode (Eddy's
	// extension of the protocol: tagged output, see Demux); other runtimes
	// ignore it, and their answer does not confirm it.
	Concurrency int `json:"concurrency,omitempty"`
	// Logs InlineLogs asks Eddy's runtime for inline logs (inline.go),
	// at most LogLimit bytes of lines per run; other runtimes ignore it.
	Logs     string `json:"logs,omitempty"`
	LogLimit int64  `json:"log_limit,omitempty"`
}

// RunRequest is the body of a runtime's POST /run. Value is the
// activation's parameters, a JSON object; nil is sent as {}.
type RunRequest struct {
	Value         json.RawMessage `json:"value"`
	Namespace     string          `json:"namespace"`
	ActionName    string          `json:"action_name"`
	ActionVersion string          `json:"action_version"`
	ActivationID  string          `json:"activation_id"`
	TransactionID string          `json:"transaction_id"`
	Deadline      string          `json:"deadline"` // epoch ms as a string
	APIKey        string          `json:"api_key,omitempty"`
	// TraceParent, a W3C traceparent, is sent as the /run request's
	// traceparent header (not in the body), so a runtime that traces
	// continues the activation's trace; one that is not well formed is
	// left out.
	TraceParent string `json:"-"`
}

// Response is an HTTP answer of the runtime, whatever its status.
type Response struct {
	Status int
	Body   []byte
	// Inline says the answer carried the run's log lines (Logs; inline.go).
	Inline bool
	Logs   []LogLine
}

// TransportError means no HTTP answer was had: the connection was refused,
// reset or closed before the answer was complete, or ctx ended first (then
// errors.Is(err, context.DeadlineExceeded or context.Canceled) holds).
type TransportError struct {
	Op   string // "init" or "run"
	Addr string
	Err  error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("runtime %s at %s: %v", e.Op, e.Addr, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// IsTransport reports whether err is a *TransportError: the runtime gave
// no answer, as opposed to answering with an error status.
func IsTransport(err error) bool {
	var te *TransportError
	return errors.As(err, &te)
}

// Client speaks the runtime protocol to one container. It keeps its
// connections alive between calls; Close releases them. It is safe for
// concurrent use.
type Client struct {
	addr string
	base string
	hc   *http.Client
	tr   *http.Transport
	run  *runConns
}

// NewClient returns a client of the runtime at addr (host:port).
func NewClient(addr string) *Client {
	tr := &http.Transport{
		Proxy:               nil, // loopback and container networks: never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	run := &runConns{addr: addr, dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}}
	return &Client{addr: addr, base: "http://" + addr, tr: tr, hc: &http.Client{Transport: tr}, run: run}
}

// Addr is the runtime's address.
func (c *Client) Addr() string { return c.addr }

// Init posts {"value": req} to /init.
func (c *Client) Init(ctx context.Context, req InitRequest) (Response, error) {
	body, err := json.Marshal(struct {
		Value InitRequest `json:"value"`
	}{req})
	if err != nil {
		return Response{}, err
	}
	return c.post(ctx, "init", body)
}

// Run posts req to /run.
func (c *Client) Run(ctx context.Context, req RunRequest) (Response, error) {
	if len(req.Value) == 0 {
		req.Value = json.RawMessage("{}")
	}
	body, err := req.appendJSON(make([]byte, 0, 256+len(req.Value)))
	if err != nil {
		return Response{}, err
	}
	resp, err := c.run.post(ctx, "/run", body, req.TraceParent)
	if err != nil {
		return Response{}, &TransportError{Op: "run", Addr: c.addr, Err: unwrapURL(err, ctx)}
	}
	return resp, nil
}

// appendJSON appends r as json.Marshal encodes it, without reflection on
// the hot path: a Value that json.Marshal would rewrite (whitespace to
// compact, <, > or & to escape, U+2028/U+2029) and strings that need
// escapes go through json.Marshal.
func (r RunRequest) appendJSON(b []byte) ([]byte, error) {
	if len(r.Value) == 0 || !whisk.PlainJSON(r.Value) {
		m, err := json.Marshal(r)
		return append(b, m...), err
	}
	b = append(b, `{"value":`...)
	b = append(b, r.Value...)
	b = append(b, `,"namespace":`...)
	b = whisk.AppendJSONString(b, r.Namespace)
	b = append(b, `,"action_name":`...)
	b = whisk.AppendJSONString(b, r.ActionName)
	b = append(b, `,"action_version":`...)
	b = whisk.AppendJSONString(b, r.ActionVersion)
	b = append(b, `,"activation_id":`...)
	b = whisk.AppendJSONString(b, r.ActivationID)
	b = append(b, `,"transaction_id":`...)
	b = whisk.AppendJSONString(b, r.TransactionID)
	b = append(b, `,"deadline":`...)
	b = whisk.AppendJSONString(b, r.Deadline)
	if r.APIKey != "" {
		b = append(b, `,"api_key":`...)
		b = whisk.AppendJSONString(b, r.APIKey)
	}
	return append(b, '}'), nil
}

// Close closes idle connections.
func (c *Client) Close() {
	c.tr.CloseIdleConnections()
	c.run.closeIdle()
}

func (c *Client) post(ctx context.Context, op string, body []byte) (Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+op, bytes.NewReader(body))
	if err != nil {
		return Response{}, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := c.hc.Do(hreq)
	if err != nil {
		return Response{}, &TransportError{Op: op, Addr: c.addr, Err: unwrapURL(err, ctx)}
	}
	defer hresp.Body.Close()
	b, err := io.ReadAll(hresp.Body)
	if err != nil {
		return Response{}, &TransportError{Op: op, Addr: c.addr, Err: unwrapURL(err, ctx)}
	}
	return Response{Status: hresp.StatusCode, Body: b}, nil
}

// unwrapURL drops the *url.Error layer (its text repeats the URL) and makes
// sure an ended ctx shows in the chain.
func unwrapURL(err error, ctx context.Context) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}
