package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// ---------------------------------------------------------------------------
// Actions

// ActionPut is the body of PUT .../actions/NAME. Every field is optional, so
// that an update sends only what the user gave (the server merges).
type ActionPut struct {
	Namespace      string       `json:"namespace,omitempty"`
	Name           string       `json:"name,omitempty"`
	Version        string       `json:"version,omitempty"`
	Exec           *ExecPut     `json:"exec,omitempty"`
	Annotations    whisk.Params `json:"annotations,omitempty"`
	DelAnnotations []string     `json:"delAnnotations,omitempty"`
	Parameters     whisk.Params `json:"parameters,omitempty"`
	Limits         *LimitsPut   `json:"limits,omitempty"`
	Publish        *bool        `json:"publish,omitempty"`
}

// ExecPut is the exec of an ActionPut. Code is a pointer so that "no code"
// and "empty code" differ; binary code is sent base64-encoded and Binary is
// left unset (the server decides, as with wsk).
type ExecPut struct {
	Kind       string   `json:"kind,omitempty"`
	Code       *string  `json:"code,omitempty"`
	Image      string   `json:"image,omitempty"`
	Main       string   `json:"main,omitempty"`
	Components []string `json:"components,omitempty"`
}

// LimitsPut are the limits of an ActionPut; nil fields are not sent.
type LimitsPut struct {
	Timeout     *int64 `json:"timeout,omitempty"`
	Memory      *int64 `json:"memory,omitempty"`
	Logs        *int64 `json:"logs,omitempty"`
	Concurrency *int   `json:"concurrency,omitempty"`
}

// ListOptions page a collection. The client always sends both (as wsk does);
// Limit 0 asks the server for its maximum.
type ListOptions struct {
	Limit int
	Skip  int
}

func (o ListOptions) query() string {
	return "limit=" + strconv.Itoa(o.Limit) + "&skip=" + strconv.Itoa(o.Skip)
}

// PutAction creates (overwrite=false) or updates (overwrite=true) the action
// named name (plain or fully qualified) and returns the stored action.
func (c *Client) PutAction(ctx context.Context, name string, a *ActionPut, overwrite bool) (*whisk.Action, error) {
	resp, err := c.Do(ctx, Request{
		Method: http.MethodPut,
		Path:   c.collectionPath("actions", name),
		Query:  "overwrite=" + strconv.FormatBool(overwrite),
		Body:   a,
	})
	if err != nil {
		return nil, err
	}
	// Like wsk, a write that succeeded stays a success even if the answer
	// cannot be decoded; the action is then nil.
	out := new(whisk.Action)
	if decode(resp, out) != nil {
		return nil, nil
	}
	return out, nil
}

// GetAction returns an action; code=false asks the server to leave out the code.
func (c *Client) GetAction(ctx context.Context, name string, code bool) (*whisk.Action, error) {
	out := new(whisk.Action)
	if err := c.get(ctx, c.collectionPath("actions", name), "code="+strconv.FormatBool(code), out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteAction deletes an action.
func (c *Client) DeleteAction(ctx context.Context, name string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: c.collectionPath("actions", name)})
	return err
}

// ListActions lists the actions of the client's namespace, or of ns when it
// is not empty.
func (c *Client) ListActions(ctx context.Context, ns string, opt ListOptions) ([]whisk.Action, error) {
	if ns == "" {
		ns = c.namespace
	}
	var out []whisk.Action
	if err := c.get(ctx, nsPath(ns)+"/actions", opt.query(), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Invoke

// InvokeOptions select how an invocation is answered.
type InvokeOptions struct {
	Blocking bool  // wait for the activation (up to the server's blocking limit)
	Result   bool  // answer with the result only (implies nothing without Blocking; wsk sets both)
	Timeout  int64 // ms the server waits for a blocking activation; 0 = server default
}

// Invocation is the answer to an invoke: Status 202 with only the id
// (non-blocking, or blocking that did not finish in time), or 200 with the
// activation record (or only the result, with Result).
type Invocation struct {
	Status       int
	ActivationID string
	Body         json.RawMessage
}

// Finished reports whether the answer carries the outcome (not just an id).
func (inv *Invocation) Finished() bool { return inv.Status != http.StatusAccepted }

// InvokeRequest is the request Invoke sends (see HTTPRequest).
func (c *Client) InvokeRequest(name string, params json.RawMessage, opt InvokeOptions) Request {
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	q := "blocking=" + strconv.FormatBool(opt.Blocking) + "&result=" + strconv.FormatBool(opt.Result)
	if opt.Timeout > 0 {
		q += "&timeout=" + strconv.FormatInt(opt.Timeout, 10)
	}
	return Request{Method: http.MethodPost, Path: c.collectionPath("actions", name), Query: q, Body: params}
}

// Invoke invokes an action with params (a JSON object; nil sends {}). An
// application error (the action failed) returns both the Invocation and an
// *Error with Application set; its Body is the record or the result.
func (c *Client) Invoke(ctx context.Context, name string, params json.RawMessage, opt InvokeOptions) (*Invocation, error) {
	resp, err := c.Do(ctx, c.InvokeRequest(name, params, opt))
	if resp == nil {
		return nil, err
	}
	inv := &Invocation{Status: resp.Status, Body: json.RawMessage(resp.Body), ActivationID: resp.Header.Get(HeaderActivationID)}
	if inv.ActivationID == "" {
		var b struct {
			ActivationID string `json:"activationId"`
		}
		_ = json.Unmarshal(resp.Body, &b)
		inv.ActivationID = b.ActivationID
	}
	if err != nil {
		var e *Error
		if asError(err, &e) && e.Application {
			return inv, err
		}
		return nil, err
	}
	if failed, msg := recordFailed(resp.Body); failed {
		return inv, &Error{Status: resp.Status, Application: true, Message: msg, Body: inv.Body}
	}
	return inv, nil
}

// recordFailed reports whether a 2xx body is an activation record whose
// response says success=false (wsk treats that as an application error).
func recordFailed(body []byte) (bool, string) {
	var rec struct {
		Response *struct {
			Success bool            `json:"success"`
			Result  json.RawMessage `json:"result"`
		} `json:"response"`
	}
	if json.Unmarshal(body, &rec) != nil || rec.Response == nil || rec.Response.Success {
		return false, ""
	}
	return true, "The following application error was received: " + compact(rec.Response.Result)
}

// ---------------------------------------------------------------------------
// Activations

// Activation is an activation record as the API returns it: whisk's record
// plus the fields only sequences carry.
type Activation struct {
	whisk.Activation
	Cause string `json:"cause,omitempty"`
}

// ActivationListOptions filter and page an activation list.
type ActivationListOptions struct {
	Name  string // action name ("name" or "pkg/name"); empty = all
	Limit int    // always sent; 0 asks for the server's maximum
	Skip  int    // always sent
	Since int64  // epoch ms; 0 = not sent
	Upto  int64  // epoch ms; 0 = not sent
	Docs  bool   // full records instead of summaries
}

func (o ActivationListOptions) query() string {
	v := []string{}
	if o.Name != "" {
		v = append(v, "name="+url.QueryEscape(o.Name))
	}
	v = append(v, "limit="+strconv.Itoa(o.Limit), "skip="+strconv.Itoa(o.Skip))
	if o.Since != 0 {
		v = append(v, "since="+strconv.FormatInt(o.Since, 10))
	}
	if o.Upto != 0 {
		v = append(v, "upto="+strconv.FormatInt(o.Upto, 10))
	}
	if o.Docs {
		v = append(v, "docs=true")
	}
	return strings.Join(v, "&")
}

// activationsPath is the activations collection. Like wsk, activation calls
// always use "_", the caller's own namespace.
func activationsPath() string { return nsPath(whisk.DefaultNamespace) + "/activations" }

// ListActivations lists activation records, newest first.
func (c *Client) ListActivations(ctx context.Context, opt ActivationListOptions) ([]Activation, error) {
	var out []Activation
	if err := c.get(ctx, activationsPath(), opt.query(), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetActivation returns one activation record.
func (c *Client) GetActivation(ctx context.Context, id string) (*Activation, error) {
	out := new(Activation)
	if err := c.get(ctx, activationsPath()+"/"+url.PathEscape(id), "", out); err != nil {
		return nil, err
	}
	return out, nil
}

// ActivationLogs returns an activation's log lines.
func (c *Client) ActivationLogs(ctx context.Context, id string) ([]string, error) {
	var out struct {
		Logs []string `json:"logs"`
	}
	if err := c.get(ctx, activationsPath()+"/"+url.PathEscape(id)+"/logs", "", &out); err != nil {
		return nil, err
	}
	return out.Logs, nil
}

// ActivationResult returns an activation's response (status and result).
func (c *Client) ActivationResult(ctx context.Context, id string) (*whisk.Response, error) {
	out := new(whisk.Response)
	if err := c.get(ctx, activationsPath()+"/"+url.PathEscape(id)+"/result", "", out); err != nil {
		return nil, err
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Namespaces and info

// ListNamespaces returns the namespaces the credential may use.
func (c *Client) ListNamespaces(ctx context.Context) ([]string, error) {
	var raw []json.RawMessage
	if err := c.get(ctx, "/api/v1/namespaces", "", &raw); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		var s string
		if json.Unmarshal(r, &s) == nil {
			out = append(out, s)
			continue
		}
		var o struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(r, &o) == nil && o.Name != "" {
			out = append(out, o.Name)
		}
	}
	return out, nil
}

// Info returns the platform description served at GET / (limits, runtimes).
func (c *Client) Info(ctx context.Context) (json.RawMessage, error) {
	resp, err := c.Do(ctx, Request{Method: http.MethodGet, Path: "/", NoAuth: true})
	if err != nil {
		return nil, err
	}
	return json.RawMessage(bytes.TrimSpace(resp.Body)), nil
}

// APIInfo is the answer of GET /api/v1.
type APIInfo struct {
	Description    string `json:"description"`
	APIVersion     string `json:"api_version"`
	APIVersionPath string `json:"api_version_path"`
	Build          string `json:"build"`
	BuildNo        string `json:"buildno"`
}

// APIInfo returns the API version description (GET /api/v1).
func (c *Client) APIInfo(ctx context.Context) (*APIInfo, error) {
	resp, err := c.Do(ctx, Request{Method: http.MethodGet, Path: "/api/v1", NoAuth: true})
	if err != nil {
		return nil, err
	}
	out := new(APIInfo)
	return out, decode(resp, out)
}

// Status returns the cluster's state as the controller reads it from etcd
// (GET /eddy/v1/status, Eddy's own route; not in OpenWhisk).
func (c *Client) Status(ctx context.Context) (*whisk.ClusterStatus, error) {
	var st whisk.ClusterStatus
	if err := c.get(ctx, "/eddy/v1/status", "", &st); err != nil {
		return nil, err
	}
	return &st, nil
}
