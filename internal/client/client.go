// Package client is Eddy's client for the OpenWhisk REST API: actions,
// invocations, activations, namespaces and the API info. It speaks the wire
// shapes of internal/whisk and interprets responses the way the wsk CLI's
// client library does: an error body {"error","code"} is an API error
// (*Error), and a 502 whose body has no "code" is an application error (the
// action failed; the body is the activation record or the result).
//
// The client is safe for concurrent use. It holds no global state; every
// method takes a context.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"syscall"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// HeaderActivationID is the response header that carries the activation id
// of an invocation.
const HeaderActivationID = "x-openwhisk-activation-id"

// DefaultUserAgent is sent when Config.UserAgent is empty.
const DefaultUserAgent = "eddy-cli/1.0"

// Config configures a Client.
type Config struct {
	// APIHost is the API's base, e.g. "http://127.0.0.1:3233". A host
	// without a scheme gets "https://", as the wsk CLI does.
	APIHost string
	// Auth is the "uuid:key" credential sent as HTTP Basic auth. It may be
	// empty for calls that need none (Info).
	Auth string
	// Namespace is the namespace used for names that are not fully
	// qualified; empty means "_" (the caller's own).
	Namespace string
	// Insecure skips TLS certificate verification (ignored when HTTPClient
	// is given).
	Insecure bool
	// HTTPClient is the client to use; nil means a new one without a
	// timeout (contexts bound the calls).
	HTTPClient *http.Client
	// UserAgent is the User-Agent header; empty means DefaultUserAgent.
	UserAgent string
	// Verbose, when set, receives every request and response.
	Verbose io.Writer
}

// Client calls one OpenWhisk-compatible API.
type Client struct {
	base      *url.URL
	auth      string
	namespace string
	http      *http.Client
	userAgent string
	verbose   io.Writer
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	base, err := ParseAPIHost(cfg.APIHost)
	if err != nil {
		return nil, err
	}
	if cfg.Auth != "" && !strings.Contains(cfg.Auth, ":") {
		return nil, errors.New("the authorization key must have the form UUID:KEY")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.Insecure {
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the user asked for --insecure
		}
		hc = &http.Client{Transport: tr}
	}
	ns := cfg.Namespace
	if ns == "" {
		ns = whisk.DefaultNamespace
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	return &Client{base: base, auth: cfg.Auth, namespace: ns, http: hc, userAgent: ua, verbose: cfg.Verbose}, nil
}

// ParseAPIHost turns an API host as users write it into a base URL: a value
// without a scheme gets "https://"; a trailing slash is dropped.
func ParseAPIHost(h string) (*url.URL, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return nil, errors.New("no API host is set")
	}
	if !strings.Contains(h, "://") {
		h = "https://" + h
	}
	u, err := url.Parse(h)
	if err != nil {
		return nil, fmt.Errorf("the API host %q is not valid: %w", h, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("the API host %q is not valid: the scheme must be http or https", h)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("the API host %q is not valid: no host", h)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// BaseURL returns the API base, e.g. "http://127.0.0.1:3233".
func (c *Client) BaseURL() string { return c.base.String() }

// Namespace returns the namespace used for names that are not fully qualified.
func (c *Client) Namespace() string { return c.namespace }

// SplitName splits an entity name into namespace and entity: "/ns/name" and
// "/ns/pkg/name" give ns and "name" / "pkg/name"; other names keep def as the
// namespace.
func SplitName(name, def string) (ns, entity string) {
	if !strings.HasPrefix(name, "/") {
		return def, name
	}
	rest := strings.TrimPrefix(name, "/")
	ns, entity, ok := strings.Cut(rest, "/")
	if !ok {
		return def, rest
	}
	return ns, entity
}

// ---------------------------------------------------------------------------
// Errors

// Error is a failed API call: an API error (Code set, from the
// {"error","code"} body), an application error (Application set: a 502, or a
// 2xx whose record says success=false; Body is the record or the result), or
// an answer the client could not interpret.
type Error struct {
	Status      int             // HTTP status
	Message     string          // the body's "error", or a description
	Code        string          // the body's "code" (the transaction id); empty if none
	Application bool            // the action failed (not the API)
	Body        json.RawMessage // the response body as received
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s (code %s)", e.Message, e.Code)
	}
	return e.Message
}

// ExitCode is the process exit status wsk uses for this error: the HTTP
// status minus 256, modulo 256 (404 → 148, 502 → 246).
func (e *Error) ExitCode() int { return ExitCodeForStatus(e.Status) }

// ExitCodeForStatus maps an HTTP status to wsk's exit status.
func ExitCodeForStatus(status int) int { return ((status-256)%256 + 256) % 256 }

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// ConnError is a request that never got an HTTP answer (connection refused,
// DNS failure, TLS failure, timeout).
type ConnError struct {
	Host string // the API base the client used
	Err  error
}

func (e *ConnError) Error() string {
	if errors.Is(e.Err, syscall.ECONNREFUSED) {
		return fmt.Sprintf("cannot connect to the API host %s: connection refused (is the server running?)", e.Host)
	}
	var dns *net.DNSError
	if errors.As(e.Err, &dns) {
		return fmt.Sprintf("cannot resolve the API host %s: %v", e.Host, dns)
	}
	return fmt.Sprintf("cannot reach the API host %s: %v", e.Host, e.Err)
}

func (e *ConnError) Unwrap() error { return e.Err }

// ---------------------------------------------------------------------------
// Requests

// Request is one API call for Do. Path is relative to the API base and
// already escaped (e.g. "/api/v1/namespaces/_/actions/hello").
type Request struct {
	Method string
	Path   string
	Query  string // already encoded, without '?'
	Body   any    // encoded as JSON when non-nil; a json.RawMessage is sent as is
	NoAuth bool
}

// Response is the raw answer to a Request that Do did not turn into an error.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends req and returns the response. Non-2xx answers become *Error (see
// the package doc); a transport failure becomes *ConnError. A 2xx answer is
// returned as is; callers decide how to decode it.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	hr, raw, err := c.httpRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	c.logRequest(hr, raw)
	resp, err := c.http.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ConnError{Host: c.BaseURL(), Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, &ConnError{Host: c.BaseURL(), Err: err}
	}
	c.logResponse(resp, data)
	out := &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return out, parseError(resp.StatusCode, data)
	}
	return out, nil
}

// HTTPRequest is the request Do would send for req, with its URL, headers
// (authentication included) and body: for a load generator that sends the
// same request many times over its own connections.
func (c *Client) HTTPRequest(ctx context.Context, req Request) (*http.Request, error) {
	hr, _, err := c.httpRequest(ctx, req)
	return hr, err
}

// httpRequest builds req's HTTP request and returns it with its body.
func (c *Client) httpRequest(ctx context.Context, req Request) (*http.Request, []byte, error) {
	u := c.base.String() + req.Path
	if req.Query != "" {
		u += "?" + req.Query
	}
	var body io.Reader
	var raw []byte
	if req.Body != nil {
		if rm, ok := req.Body.(json.RawMessage); ok {
			raw = append([]byte(rm), '\n')
		} else {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(req.Body); err != nil {
				return nil, nil, fmt.Errorf("encoding the request body: %w", err)
			}
			raw = buf.Bytes()
		}
		body = bytes.NewReader(raw)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, u, body)
	if err != nil {
		return nil, nil, fmt.Errorf("building the request: %w", err)
	}
	if !req.NoAuth && c.auth != "" {
		hr.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.auth)))
	}
	hr.Header.Set("User-Agent", c.userAgent)
	hr.Header.Set("Accept", "application/json")
	if raw != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	return hr, raw, nil
}

// parseError interprets a non-2xx body as wsk's client library does.
func parseError(status int, data []byte) error {
	var eb struct {
		Error *json.RawMessage `json:"error"`
		Code  *json.RawMessage `json:"code"`
	}
	e := &Error{Status: status, Body: json.RawMessage(data)}
	if err := json.Unmarshal(data, &eb); err == nil {
		switch {
		case eb.Code == nil && status == http.StatusBadGateway:
			e.Application = true
			e.Message = applicationMessage(data)
			return e
		case eb.Code != nil && eb.Error != nil:
			e.Message = jsonText(*eb.Error)
			e.Code = jsonText(*eb.Code)
			return e
		}
	}
	e.Message = fmt.Sprintf("The connection failed, or timed out. (HTTP status code %d)", status)
	return e
}

// applicationMessage summarizes an application error body: the record's
// response.result.error, or the result's error.
func applicationMessage(data []byte) string {
	var rec struct {
		Response *struct {
			Status string          `json:"status"`
			Result json.RawMessage `json:"result"`
		} `json:"response"`
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &rec) == nil {
		if rec.Response != nil {
			return "The following application error was received: " + compact(rec.Response.Result)
		}
		if rec.Error != nil {
			return jsonText(rec.Error)
		}
	}
	return "the action failed: " + string(data)
}

// jsonText renders a JSON string as its text and anything else as JSON.
func jsonText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return compact(v)
}

func compact(v json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return string(v)
	}
	return b.String()
}

func (c *Client) logRequest(r *http.Request, body []byte) {
	if c.verbose == nil {
		return
	}
	fmt.Fprintf(c.verbose, "REQUEST:\n[%s]\t%s\n", r.Method, r.URL)
	fmt.Fprintln(c.verbose, "Req Headers")
	printHeaders(c.verbose, r.Header)
	if body != nil {
		fmt.Fprintln(c.verbose, "Req Body")
		fmt.Fprintln(c.verbose, strings.TrimRight(string(body), "\n"))
	}
}

func (c *Client) logResponse(r *http.Response, body []byte) {
	if c.verbose == nil {
		return
	}
	fmt.Fprintf(c.verbose, "RESPONSE:Got response with code %d\n", r.StatusCode)
	fmt.Fprintln(c.verbose, "Resp Headers")
	printHeaders(c.verbose, r.Header)
	fmt.Fprintf(c.verbose, "Response body size is %d bytes\n", len(body))
	fmt.Fprintf(c.verbose, "Response body received:\n%s\n", body)
}

func printHeaders(w io.Writer, h http.Header) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := strings.Join(h[k], ", ")
		if k == "Authorization" {
			v = "Basic ********"
		}
		fmt.Fprintf(w, "  %s: %s\n", k, v)
	}
}

// decode decodes a 2xx body into out; an empty body leaves out unchanged.
func decode(resp *Response, out any) error {
	if len(bytes.TrimSpace(resp.Body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return &Error{Status: resp.Status, Body: resp.Body,
			Message: fmt.Sprintf("the server's answer is not the expected JSON: %v", err)}
	}
	return nil
}

// get is GET path?query decoded into out.
func (c *Client) get(ctx context.Context, path, query string, out any) error {
	resp, err := c.Do(ctx, Request{Method: http.MethodGet, Path: path, Query: query})
	if err != nil {
		return err
	}
	return decode(resp, out)
}

// nsPath returns "/api/v1/namespaces/<ns>" for a namespace.
func nsPath(ns string) string { return "/api/v1/namespaces/" + url.PathEscape(ns) }

// entityPath escapes each "/"-separated segment of an entity name.
func entityPath(entity string) string {
	parts := strings.Split(entity, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// collectionPath returns the path of an entity in a collection, resolving a
// fully qualified name's namespace.
func (c *Client) collectionPath(collection, name string) string {
	ns, entity := SplitName(name, c.namespace)
	return nsPath(ns) + "/" + collection + "/" + entityPath(entity)
}

func asError(err error, target **Error) bool { return errors.As(err, target) }
