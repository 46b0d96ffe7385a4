package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/web"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// webPrefix is the path of web actions: /api/v1/web/{ns}/{pkg}/{action}[.ext][/rest].
const webPrefix = "/api/v1/web/"

// Action annotations of web actions (docs/webactions.md).
const (
	annWebExport     = "web-export"
	annRawHTTP       = "raw-http"
	annFinal         = "final"
	annCustomOptions = "web-custom-options"
	annRequireAuth   = "require-whisk-auth"
)

// webDefaultPackage is the package segment of actions outside packages.
const webDefaultPackage = "default"

// resolveWebAction finds the action a web URL names: pkg is "default"
// for an action outside packages, else a package or binding of namespace
// ns, resolved through the catalog as ns's owner would (parameters merged
// package < binding < action; Binding set when a binding was followed). A
// missing package or action is NotFound; an entitlement failure Forbidden.
func (s *server) resolveWebAction(ctx context.Context, ns, pkg, name string) (whisk.ResolvedAction, error) {
	if pkg == webDefaultPackage {
		pkg = ""
	}
	return s.cat.Action(ctx, ns, whisk.EntityName{Namespace: ns, Package: pkg, Name: name})
}

// ownerTTL is how long the owner of a namespace is remembered: like the
// cached store's identities, a namespace removed by another process is
// seen within it.
const ownerTTL = 2 * time.Second

// owners caches the identity that owns each namespace, so that a warm web
// request reads nothing from the store beyond the cached action.
type owners struct {
	mu sync.Mutex
	m  map[string]ownerEntry
}

type ownerEntry struct {
	id    whisk.Identity
	found bool
	exp   time.Time
}

// owner returns the identity of namespace ns (NotFound when it has none).
func (s *server) owner(ctx context.Context, ns string) (whisk.Identity, error) {
	now := s.now()
	s.owners.mu.Lock()
	e, ok := s.owners.m[ns]
	s.owners.mu.Unlock()
	if !ok || now.After(e.exp) {
		ids, err := s.store.ListIdentities(ctx, ns)
		if err != nil {
			return whisk.Identity{}, err
		}
		e = ownerEntry{exp: now.Add(ownerTTL)}
		if len(ids) > 0 {
			e.id, e.found = ids[0], true
		}
		s.owners.mu.Lock()
		if len(s.owners.m) > 10000 {
			clear(s.owners.m)
		}
		s.owners.m[ns] = e
		s.owners.mu.Unlock()
	}
	if !e.found {
		return whisk.Identity{}, whisk.E("api.owner", whisk.NotFound, whisk.MsgNotFound, nil)
	}
	return e.id, nil
}

// webTarget is a parsed web action URL.
type webTarget struct {
	ns, pkg, name, ext string
	rest               string // "" or "/a/b", as sent (escaped)
}

// parseWebPath splits the escaped path after /api/v1/web/; fewer than three
// segments or invalid names are not found.
func parseWebPath(escaped string) (webTarget, bool) {
	segs := strings.SplitN(escaped, "/", 4)
	if len(segs) < 3 {
		return webTarget{}, false
	}
	var t webTarget
	var err error
	if t.ns, err = url.PathUnescape(segs[0]); err != nil {
		return webTarget{}, false
	}
	if t.pkg, err = url.PathUnescape(segs[1]); err != nil {
		return webTarget{}, false
	}
	last, err := url.PathUnescape(segs[2])
	if err != nil {
		return webTarget{}, false
	}
	t.name, t.ext = web.SplitName(last)
	if len(segs) == 4 {
		t.rest = "/" + segs[3]
	}
	if !whisk.ValidName(t.ns) || !whisk.ValidName(t.name) || (t.pkg != webDefaultPackage && !whisk.ValidName(t.pkg)) {
		return webTarget{}, false
	}
	return t, true
}

// webMethods are the methods web actions answer.
var webMethods = []string{http.MethodGet, http.MethodDelete, http.MethodPost, http.MethodPut,
	http.MethodHead, http.MethodOptions, http.MethodPatch}

func webMethod(m string) bool {
	for _, x := range webMethods {
		if m == x {
			return true
		}
	}
	return false
}

// serveWeb serves /api/v1/web/... (docs/webactions.md): every error body is
// pretty-printed.
func (s *server) serveWeb(w http.ResponseWriter, r *http.Request) {
	if !webMethod(r.Method) {
		for _, m := range webMethods {
			w.Header().Add("Allow", m)
		}
		s.webError(w, r, http.StatusMethodNotAllowed, whisk.MsgMethodNotAllowed)
		return
	}
	t, ok := parseWebPath(strings.TrimPrefix(r.URL.EscapedPath(), webPrefix))
	if !ok {
		s.webError(w, r, http.StatusNotFound, whisk.MsgNotFound)
		return
	}
	if t.ns == apimgmtNamespace && t.pkg == apimgmtPackage {
		s.serveAPIMgmt(w, r, t)
		return
	}
	if err := s.serveWebAction(w, r, t); err != nil {
		s.webKindError(w, r, err)
	}
}

// serveWebAction resolves, checks, invokes and renders one web action call.
func (s *server) serveWebAction(w http.ResponseWriter, r *http.Request, t webTarget) error {
	ctx := r.Context()
	owner, err := s.owner(ctx, t.ns)
	if err != nil {
		return notFoundUnless(err)
	}
	ra, err := s.resolveWebAction(ctx, t.ns, t.pkg, t.name)
	if err != nil {
		return notFoundUnless(err)
	}
	a := ra.Action
	if !a.Annotations.IsTrue(annWebExport) {
		return whisk.E("api.web", whisk.NotFound, whisk.MsgNotFound, nil)
	}
	if r.ContentLength > s.limits.MaxPayload {
		return webRefusal(http.StatusRequestEntityTooLarge, web.MsgTooLarge(r.ContentLength, s.limits.MaxPayload))
	}
	customOptions := a.Annotations.IsTrue(annCustomOptions)
	if !customOptions {
		web.SetCORS(w.Header(), r.Header)
		if r.Method == http.MethodOptions {
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusOK)
			return nil
		}
	}
	// Credentials are optional: valid ones name the caller (__ow_user),
	// anything else leaves the call anonymous.
	var caller string
	if r.Header.Get("Authorization") != "" {
		if id, err := s.authenticate(r); err == nil {
			caller = id.Namespace
		}
	}
	if !(customOptions && r.Method == http.MethodOptions) {
		ann, _ := a.Annotations.Get(annRequireAuth)
		if !web.Authorized(ann, caller != "", r.Header) {
			return whisk.E("api.web", whisk.Unauthorized, whisk.MsgAuthInvalid, nil)
		}
	}
	body, err := readBody(w, r, s.limits.MaxPayload)
	if err != nil {
		if whisk.IsKind(err, whisk.TooLarge) {
			size := r.ContentLength
			if size <= s.limits.MaxPayload {
				size = s.limits.MaxPayload + 1
			}
			return webRefusal(http.StatusRequestEntityTooLarge, web.MsgTooLarge(size, s.limits.MaxPayload))
		}
		return err
	}
	args, werr := web.Args(web.Request{
		Method: r.Method, Header: r.Header, Host: r.Host, Path: t.rest, RawQuery: r.URL.RawQuery,
		Body: body, User: caller,
	}, a.Annotations.IsTrue(annRawHTTP), finalParams(a))
	if werr != nil {
		return werr
	}
	res, err := s.inv.Invoke(ctx, controller.Request{
		TransactionID: transactionID(r),
		Identity:      owner,
		Action:        a,
		Binding:       ra.Binding,
		Params:        args,
		Blocking:      true,
		TraceParent:   r.Header.Get("traceparent"),
	})
	if err != nil {
		return err
	}
	w.Header().Set("X-Openwhisk-Activation-Id", string(res.ActivationID))
	if res.Activation == nil {
		return webRefusal(http.StatusAccepted, web.MsgResponseNotReady)
	}
	resp := res.Activation.Response
	var value json.RawMessage
	switch resp.StatusCode {
	case whisk.StatusSuccess:
		value = resp.Result
		if len(bytes.TrimSpace(value)) == 0 {
			value = json.RawMessage("{}")
		}
	case whisk.StatusApplicationError:
		v, ok := errorField(resp.Result)
		if !ok {
			return webRefusal(http.StatusNotFound, web.MsgPropertyNotFound)
		}
		value = v
	default:
		return webRefusal(http.StatusBadRequest, web.MsgErrorProcessing)
	}
	out, werr := web.Transcode(t.ext, value)
	if werr != nil {
		return werr
	}
	s.writeWebResponse(w, r, out)
	return nil
}

// writeWebResponse writes a transcoded response, enforcing the request's
// Accept header for responses with an entity.
func (s *server) writeWebResponse(w http.ResponseWriter, r *http.Request, out web.Response) {
	h := w.Header()
	if out.ContentType != "" && !web.Acceptable(r.Header.Get("Accept"), out.ContentType) {
		msg := web.MsgNotAcceptable(out.ContentType)
		h.Set("Content-Type", "text/plain; charset=UTF-8")
		h.Set("Content-Length", strconv.Itoa(len(msg)))
		w.WriteHeader(http.StatusNotAcceptable)
		_, _ = w.Write([]byte(msg))
		return
	}
	for k, vs := range out.Header {
		// The action's headers replace the defaults (CORS) of the same name.
		h.Del(k)
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if out.ContentType != "" {
		h.Set("Content-Type", out.ContentType)
	}
	h.Set("Content-Length", strconv.Itoa(len(out.Body)))
	w.WriteHeader(out.Status)
	if len(out.Body) > 0 && r.Method != http.MethodHead {
		_, _ = w.Write(out.Body)
	}
}

// errorField is the "error" member of an application error's result.
func errorField(result json.RawMessage) (json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(result, &m) != nil {
		return nil, false
	}
	v, ok := m["error"]
	return v, ok
}

// finalParams reports, for an action annotated final, its parameters with a
// value (OpenWhisk's immutableParameters); nil otherwise.
func finalParams(a whisk.Action) func(string) bool {
	if !truthyAnnotation(a.Annotations, annFinal) {
		return nil
	}
	return func(k string) bool {
		v, ok := a.Parameters.Get(k)
		return ok && string(bytes.TrimSpace(v)) != "null"
	}
}

// truthyAnnotation is OpenWhisk's isTruthy: false, 0, "" and null are false.
func truthyAnnotation(p whisk.Params, key string) bool {
	v, ok := p.Get(key)
	if !ok {
		return false
	}
	switch t := string(bytes.TrimSpace(v)); t {
	case "", "false", "null", `""`, "0":
		return false
	default:
		if f, err := strconv.ParseFloat(t, 64); err == nil {
			return f != 0
		}
		return true
	}
}

// notFoundUnless hides why a lookup failed from anonymous callers: any
// refusal is a 404; only a store outage shows as itself.
func notFoundUnless(err error) error {
	switch whisk.KindOf(err) {
	case whisk.Unavailable, whisk.Timeout, whisk.Internal:
		return err
	}
	return whisk.E("api.web", whisk.NotFound, whisk.MsgNotFound, err)
}

// webRefusal is a refusal with its own status and message.
func webRefusal(status int, msg string) *web.Error { return &web.Error{Status: status, Msg: msg} }

// webKindError writes err as a pretty-printed web error.
func (s *server) webKindError(w http.ResponseWriter, r *http.Request, err error) {
	if we, ok := err.(*web.Error); ok {
		s.webError(w, r, we.Status, we.Msg)
		return
	}
	kind := whisk.KindOf(err)
	status := kind.HTTPStatus()
	if t := whisk.ThrottleOf(err); t != nil && status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(t.RetryAfterSeconds()))
	}
	if status >= 500 {
		s.log.Error("web request failed", "tid", transactionID(r), "path", r.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="OpenWhisk secure realm"`)
	}
	s.webError(w, r, status, whisk.UserMessage(err))
}

// webError writes {"error","code"} pretty-printed, as OpenWhisk's web
// routes do.
func (s *server) webError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}{msg, transactionID(r)})
	b = web.Pretty(b)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}
