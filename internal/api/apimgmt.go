package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/apigw"
	"github.com/eddy-faas/eddy/internal/web"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// The private package whose web actions the wsk CLI calls for `wsk api`
// (docs/webactions.md); Eddy answers them natively.
const (
	apimgmtNamespace = "whisk.system"
	apimgmtPackage   = "apimgmt"
)

// APIDocs stores the API gateway's swagger documents, one per (namespace,
// base path). Rev is the document's revision for compare-and-swap writes
// (0 creates); NotFound when absent, Conflict when a write lost a race.
type APIDocs interface {
	GetAPI(ctx context.Context, namespace, basePath string) (doc []byte, rev int64, err error)
	PutAPI(ctx context.Context, namespace, basePath string, doc []byte, expectRev int64) error
	DeleteAPI(ctx context.Context, namespace, basePath string, expectRev int64) error
	// ListAPIs returns every document of a namespace.
	ListAPIs(ctx context.Context, namespace string) ([][]byte, error)
}

// maxAPIDoc bounds one stored API document (all its paths and verbs).
const maxAPIDoc = 1 << 20

// routesTTL is how long a namespace's gateway routes are remembered; a
// change made through another controller is served within it (writes
// through this one are seen at once).
const routesTTL = 2 * time.Second

// routeCache holds each namespace's parsed gateway routes.
type routeCache struct {
	mu sync.Mutex
	m  map[string]routeEntry
}

type routeEntry struct {
	routes []apigw.Route
	exp    time.Time
}

func (c *routeCache) drop(ns string) {
	c.mu.Lock()
	delete(c.m, ns)
	c.mu.Unlock()
}

// apiRoutes returns the gateway routes of namespace ns.
func (s *server) apiRoutes(ctx context.Context, ns string) ([]apigw.Route, error) {
	now := s.now()
	s.gwRoutes.mu.Lock()
	e, ok := s.gwRoutes.m[ns]
	s.gwRoutes.mu.Unlock()
	if ok && now.Before(e.exp) {
		return e.routes, nil
	}
	docs, err := s.apiDocs.ListAPIs(ctx, ns)
	if err != nil {
		return nil, err
	}
	var routes []apigw.Route
	for _, b := range docs {
		var d apigw.Doc
		if apigw.Decode(b, &d) == nil {
			routes = append(routes, apigw.Routes(d)...)
		}
	}
	// Longer base paths first: /a/b wins over /a for /a/b/c.
	sort.SliceStable(routes, func(i, j int) bool { return len(routes[i].BasePath) > len(routes[j].BasePath) })
	s.gwRoutes.mu.Lock()
	if len(s.gwRoutes.m) > 10000 {
		clear(s.gwRoutes.m)
	}
	s.gwRoutes.m[ns] = routeEntry{routes: routes, exp: now.Add(routesTTL)}
	s.gwRoutes.mu.Unlock()
	return routes, nil
}

// gatewayPath reports whether an escaped path is a gateway route:
// /api/{uuid}/...
func gatewayPath(p string) (tenant, rest string, ok bool) {
	after, found := strings.CutPrefix(p, "/api/")
	if !found {
		return "", "", false
	}
	tenant, rest, _ = strings.Cut(after, "/")
	if len(tenant) != 36 || strings.Count(tenant, "-") != 4 {
		return "", "", false
	}
	return tenant, "/" + rest, true
}

// serveGateway serves a call to a route created with `wsk api create`
// (docs/webactions.md): /api/{tenant}/{basePath}/{relPath}, the tenant being
// the UUID of a key of the API's namespace.
func (s *server) serveGateway(w http.ResponseWriter, r *http.Request, tenant, rest string) {
	if err := s.gateway(w, r, tenant, rest); err != nil {
		s.webKindError(w, r, err)
	}
}

func (s *server) gateway(w http.ResponseWriter, r *http.Request, tenant, rest string) error {
	notFound := whisk.E("api.gateway", whisk.NotFound, whisk.MsgNotFound, nil)
	if s.apiDocs == nil {
		return notFound
	}
	id, err := s.store.IdentityByUUID(r.Context(), tenant)
	if err != nil {
		return notFoundUnless(err)
	}
	routes, err := s.apiRoutes(r.Context(), id.Namespace)
	if err != nil {
		return err
	}
	pathMatched := false
	for _, rt := range routes {
		rel, ok := strings.CutPrefix(rest, rt.BasePath)
		if !ok || (rel != "" && rel[0] != '/' && rt.BasePath != "") {
			continue
		}
		if !rt.Match(rel) {
			continue
		}
		pathMatched = true
		if rt.Verb != r.Method {
			continue
		}
		pkg := rt.Package
		if pkg == "" {
			pkg = webDefaultPackage
		}
		t := webTarget{ns: rt.Namespace, pkg: pkg, name: rt.Action, ext: rt.ResponseType}
		if t.ext == web.ExtHTTP {
			t.rest = rel
		}
		if rt.SecureKey != "" {
			r.Header.Set(web.RequireWhiskAuthHeader, rt.SecureKey)
		}
		return s.serveWebAction(w, r, t)
	}
	if pathMatched && r.Method == http.MethodOptions {
		// CORS is enabled on every API: the gateway answers preflights.
		web.SetCORS(w.Header(), r.Header)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	return notFound
}

// apimgmt errors (routemgmt's messages).
const (
	msgAuthKeyRequired = "A valid auth key is required."
	msgInvalidAuth     = "Invalid authentication."
)

// apimgmtError is a routemgmt failure: 502 {"error": msg}.
type apimgmtError struct{ msg string }

func (e *apimgmtError) Error() string { return e.msg }

func mgmtErr(format string, args ...any) error { return &apimgmtError{fmt.Sprintf(format, args...)} }

// serveAPIMgmt answers createApi, getApi and deleteApi of
// /whisk.system/apimgmt as OpenWhisk's routemgmt actions do.
func (s *server) serveAPIMgmt(w http.ResponseWriter, r *http.Request, t webTarget) {
	var fn func(*http.Request, whisk.Identity, url.Values, []byte) (any, error)
	switch t.name {
	case "createApi":
		fn = s.createAPI
	case "getApi":
		fn = s.getAPI
	case "deleteApi":
		fn = s.deleteAPI
	}
	if fn == nil || s.apiDocs == nil {
		s.webError(w, r, http.StatusNotFound, whisk.MsgNotFound)
		return
	}
	web.SetCORS(w.Header(), r.Header)
	if r.Method == http.MethodOptions {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	body, err := readBody(w, r, s.limits.MaxPayload)
	if err != nil {
		s.webKindError(w, r, err)
		return
	}
	var caller whisk.Identity
	authed := false
	if r.Header.Get("Authorization") != "" {
		if id, err := s.authenticate(r); err == nil {
			caller, authed = id, true
		}
	}
	var out any
	if !authed {
		msg := msgInvalidAuth
		if t.name == "createApi" {
			msg = msgAuthKeyRequired
		}
		err = &apimgmtError{msg}
	} else {
		out, err = fn(r, caller, r.URL.Query(), body)
	}
	status := http.StatusOK
	if err != nil {
		var me *apimgmtError
		if !errors.As(err, &me) {
			if whisk.KindOf(err) == whisk.Invalid {
				s.webKindError(w, r, err)
				return
			}
			s.log.Error("api management failed", "tid", transactionID(r), "op", t.name, "err", err)
			me = &apimgmtError{whisk.UserMessage(err)}
		}
		status = http.StatusBadGateway
		out = map[string]string{"error": me.msg}
	}
	b, _ := json.Marshal(out)
	s.writeWebResponse(w, r, web.Response{Status: status, ContentType: web.TypeJSON, Body: web.Pretty(b)})
}

// gwAPIURL is the managed URL of an API: the gateway's base URL (the
// configured one, else the URL this request came to), /api/{tenant}, the
// base path.
func (s *server) gwAPIURL(r *http.Request, tenant, basePath string) string {
	base := strings.TrimSuffix(s.cfg.GatewayURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return base + "/api/" + tenant + basePath
}

// cliAPI is an API as the CLI reads it (generateCliApiFromGwApi's value).
type cliAPI struct {
	Namespace      string    `json:"namespace"`
	GwAPIActivated bool      `json:"gwApiActivated"`
	TenantID       string    `json:"tenantId"`
	GwAPIURL       string    `json:"gwApiUrl"`
	APIDoc         apigw.Doc `json:"apidoc"`
}

func (s *server) cliAPI(r *http.Request, caller whisk.Identity, tenant string, doc apigw.Doc) cliAPI {
	return cliAPI{Namespace: caller.Namespace, GwAPIActivated: true, TenantID: tenant,
		GwAPIURL: s.gwAPIURL(r, tenant, apigw.BasePath(doc)), APIDoc: doc}
}

func tenantOf(q url.Values, caller whisk.Identity) string {
	if t := q.Get("spaceguid"); t != "" {
		return t
	}
	return caller.UUID
}

// createApiBody is createApi's body: {"apidoc": object or JSON string}.
type createAPIBody struct {
	APIDoc json.RawMessage `json:"apidoc"`
}

// createAPI adds an endpoint to the namespace's API of its base path, or
// replaces the API with a given swagger document.
func (s *server) createAPI(r *http.Request, caller whisk.Identity, q url.Values, body []byte) (any, error) {
	var in createAPIBody
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, whisk.E("api.createAPI", whisk.Invalid, whisk.MsgMalformed+err.Error(), err)
		}
	}
	raw := in.APIDoc
	if kind := firstByte(raw); kind == 0 || string(raw) == "null" {
		return nil, mgmtErr("apidoc is required.")
	} else if kind == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		if !json.Valid([]byte(s)) {
			return nil, mgmtErr("apidoc field cannot be parsed. Ensure it is valid JSON.")
		}
		raw = json.RawMessage(s)
	} else if kind != '{' {
		return nil, mgmtErr("apidoc field is of type %s and should be a JSON object or a JSON string.", jsType(raw))
	}
	var ep apigw.Endpoint
	if err := apigw.Decode(raw, &ep); err != nil {
		return nil, mgmtErr("apidoc field cannot be parsed. Ensure it is valid JSON.")
	}
	if ep.Namespace == "" {
		return nil, mgmtErr("apidoc is missing the namespace field")
	}
	var swagger apigw.Doc
	if ep.Swagger != nil {
		if ep.BasePath != "" {
			return nil, mgmtErr("swagger and gatewayBasePath are mutually exclusive and cannot be specified together.")
		}
		switch sw := ep.Swagger.(type) {
		case map[string]any:
			swagger = sw
		case string:
			if err := apigw.Decode([]byte(sw), &swagger); err != nil || swagger == nil {
				return nil, mgmtErr("swagger field cannot be parsed. Ensure it is valid JSON.")
			}
		default:
			return nil, mgmtErr("swagger field is %s and should be an object or a JSON string.", jsTypeOf(sw))
		}
		for _, f := range []string{"basePath", "paths", "info"} {
			if v, ok := swagger[f]; !ok || v == nil || v == "" {
				return nil, mgmtErr("swagger is missing the %s field.", f)
			}
		}
		if _, ok := swagger["basePath"].(string); !ok {
			return nil, mgmtErr("swagger is missing the basePath field.")
		}
		apigw.SetNamespace(swagger, caller.Namespace)
	} else {
		switch {
		case ep.BasePath == "":
			return nil, mgmtErr("apidoc is missing the gatewayBasePath field")
		case ep.RelPath == "":
			return nil, mgmtErr("apidoc is missing the gatewayPath field")
		case ep.Method == "":
			return nil, mgmtErr("apidoc is missing the gatewayMethod field")
		case ep.Action == nil:
			return nil, mgmtErr("apidoc is missing the action field.")
		case ep.Action.BackendMethod == "":
			return nil, mgmtErr("action is missing the backendMethod field.")
		case ep.Action.BackendURL == "":
			return nil, mgmtErr("action is missing the backendUrl field.")
		case ep.Action.Namespace == "":
			return nil, mgmtErr("action is missing the namespace field.")
		case ep.Action.Name == "":
			return nil, mgmtErr("action is missing the name field.")
		case ep.Action.AuthKey == "":
			return nil, mgmtErr("action is missing the authkey field.")
		}
		if ep.Action.Namespace == whisk.DefaultNamespace {
			ep.Action.Namespace = caller.Namespace
			ep.Action.BackendURL = strings.Replace(ep.Action.BackendURL, "/api/v1/web/_/", "/api/v1/web/"+caller.Namespace+"/", 1)
		}
		if !validRel(ep.RelPath) || !validRel(ep.BasePath) {
			return nil, mgmtErr("API creation failure: the base and relative paths must start with '/'")
		}
		if strings.Contains(ep.BasePath, "{") {
			return nil, mgmtErr("API creation failure: The base path (%s) cannot have parameters. Only the relative path supports path parameters.", ep.BasePath)
		}
		rt := q.Get("responsetype")
		if rt == "" {
			rt = web.ExtJSON
		}
		if _, ext := web.SplitName("x." + rt); ext != rt {
			return nil, mgmtErr("API creation failure: Invalid response type '%s'", rt)
		}
		if strings.Contains(ep.RelPath, "{") && rt != web.ExtHTTP {
			return nil, mgmtErr("API creation failure: The action must use a response type of '.http' in order to receive the path parameters.")
		}
	}
	basePath := ep.BasePath
	if swagger != nil {
		basePath, _ = swagger["basePath"].(string)
	}
	tenant := tenantOf(q, caller)
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		old, rev, err := s.apiDocs.GetAPI(ctx, caller.Namespace, basePath)
		if err != nil && !whisk.IsKind(err, whisk.NotFound) {
			return nil, err
		}
		doc := swagger
		if doc == nil {
			if err == nil {
				if apigw.Decode(old, &doc) != nil || doc == nil {
					doc = nil
				}
			}
			if doc == nil {
				doc = apigw.NewDoc(basePath, ep.APIName)
			}
			apigw.AddEndpoint(doc, ep, q.Get("responsetype"))
		}
		b, err := json.Marshal(doc)
		if err != nil {
			return nil, mgmtErr("API creation failure: %v", err)
		}
		if len(b) > maxAPIDoc {
			return nil, mgmtErr("API creation failure: the API document is larger than %d bytes", maxAPIDoc)
		}
		err = s.apiDocs.PutAPI(ctx, caller.Namespace, basePath, b, rev)
		if whisk.IsKind(err, whisk.Conflict) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.gwRoutes.drop(caller.Namespace)
		return s.cliAPI(r, caller, tenant, doc), nil
	}
}

func validRel(p string) bool { return strings.HasPrefix(p, "/") && !strings.ContainsAny(p, "?#") }

// findAPIs returns the namespace's APIs whose base path or name is
// bpOrName ("" = all), ordered by base path.
func (s *server) findAPIs(ctx context.Context, ns, bpOrName string) ([]apigw.Doc, error) {
	if strings.HasPrefix(bpOrName, "/") {
		b, _, err := s.apiDocs.GetAPI(ctx, ns, bpOrName)
		if whisk.IsKind(err, whisk.NotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var d apigw.Doc
		if apigw.Decode(b, &d) != nil {
			return nil, nil
		}
		return []apigw.Doc{d}, nil
	}
	all, err := s.apiDocs.ListAPIs(ctx, ns)
	if err != nil {
		return nil, err
	}
	var out []apigw.Doc
	for _, b := range all {
		var d apigw.Doc
		if apigw.Decode(b, &d) != nil || d == nil {
			continue
		}
		if bpOrName == "" || apigw.Title(d) == bpOrName {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return apigw.BasePath(out[i]) < apigw.BasePath(out[j]) })
	return out, nil
}

// cliAPIEntry is one element of getApi's "apis".
type cliAPIEntry struct {
	ID    string `json:"id"`
	Key   string `json:"key"`
	Value cliAPI `json:"value"`
}

// getAPI lists the namespace's APIs, or the one of a base path or name.
func (s *server) getAPI(r *http.Request, caller whisk.Identity, q url.Values, _ []byte) (any, error) {
	docs, err := s.findAPIs(r.Context(), caller.Namespace, q.Get("basepath"))
	if err != nil {
		return nil, err
	}
	skip, limit, err := paging(q, "apis")
	if err != nil {
		return nil, err
	}
	if skip >= len(docs) {
		docs = nil
	} else {
		docs = docs[skip:]
	}
	if len(docs) > limit {
		docs = docs[:limit]
	}
	tenant := tenantOf(q, caller)
	apis := make([]cliAPIEntry, 0, len(docs))
	for _, d := range docs {
		apis = append(apis, cliAPIEntry{ID: caller.Namespace + ":" + apigw.BasePath(d), Key: caller.Namespace + ":" + apigw.BasePath(d),
			Value: s.cliAPI(r, caller, tenant, d)})
	}
	return map[string]any{"apis": apis}, nil
}

// deleteAPI removes an API, one of its paths, or one verb of a path.
func (s *server) deleteAPI(r *http.Request, caller whisk.Identity, q url.Values, _ []byte) (any, error) {
	bp, rel, op := q.Get("basepath"), q.Get("relpath"), q.Get("operation")
	if bp == "" {
		return nil, mgmtErr("basepath is required.")
	}
	if rel == "" && op != "" {
		return nil, mgmtErr("When specifying an operation, the path is required.")
	}
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		docs, err := s.findAPIs(ctx, caller.Namespace, bp)
		if err != nil {
			return nil, err
		}
		if len(docs) == 0 {
			return nil, mgmtErr("API deletion failure: API '%s' does not exist.", bp)
		}
		doc := docs[0]
		base := apigw.BasePath(doc)
		_, rev, err := s.apiDocs.GetAPI(ctx, caller.Namespace, base)
		if err != nil {
			if whisk.IsKind(err, whisk.NotFound) && attempt < 5 {
				continue
			}
			return nil, err
		}
		if rel == "" {
			err = s.apiDocs.DeleteAPI(ctx, caller.Namespace, base, rev)
		} else {
			if rerr := apigw.RemoveEndpoint(doc, rel, op); rerr != nil {
				return nil, mgmtErr("API deletion failure: %s", rerr.Error())
			}
			if apigw.Empty(doc) {
				err = s.apiDocs.DeleteAPI(ctx, caller.Namespace, base, rev)
			} else {
				b, _ := json.Marshal(doc)
				err = s.apiDocs.PutAPI(ctx, caller.Namespace, base, b, rev)
			}
		}
		if (whisk.IsKind(err, whisk.Conflict) || whisk.IsKind(err, whisk.NotFound)) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.gwRoutes.drop(caller.Namespace)
		return map[string]any{}, nil
	}
}

func firstByte(b []byte) byte {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c
		}
	}
	return 0
}

// jsType names a JSON value's JavaScript type, for routemgmt's messages.
func jsType(raw json.RawMessage) string {
	switch firstByte(raw) {
	case 't', 'f':
		return "boolean"
	case '[':
		return "object"
	default:
		return "number"
	}
}

func jsTypeOf(v any) string {
	switch v.(type) {
	case bool:
		return "boolean"
	case float64, json.Number:
		return "number"
	default:
		return "object"
	}
}
