// Package apigw is Eddy's built-in API gateway: the swagger documents that
// OpenWhisk's route management actions (core/routemgmt, apigw-utils.js)
// keep per namespace and base path, and the routing of gateway requests
// (/api/{tenant}/{basePath}/{relPath}) to web actions
// (docs/webactions.md).
//
// A document is held as generic JSON (map[string]any): users may supply
// their own swagger with `wsk api create --config-file`, and every field of
// it is kept. Nothing here does I/O.
package apigw

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// Doc is a swagger 2.0 document as stored.
type Doc = map[string]any

// Action is the target of an endpoint (createApi's apidoc.action).
type Action struct {
	Name          string `json:"name"` // "a" or "pkg/a" (or "/ns/pkg/a")
	Namespace     string `json:"namespace"`
	BackendMethod string `json:"backendMethod"`
	BackendURL    string `json:"backendUrl"`
	AuthKey       string `json:"authkey"`
	SecureKey     any    `json:"secureKey,omitempty"`
}

// Endpoint is one path and verb to add (createApi's apidoc without swagger).
type Endpoint struct {
	Namespace      string           `json:"namespace"`
	APIName        string           `json:"apiName,omitempty"`
	BasePath       string           `json:"gatewayBasePath"`
	RelPath        string           `json:"gatewayPath"`
	Method         string           `json:"gatewayMethod"`
	ID             string           `json:"id,omitempty"`
	Action         *Action          `json:"action,omitempty"`
	PathParameters []map[string]any `json:"pathParameters,omitempty"`
	Swagger        any              `json:"swagger,omitempty"`
}

// NewDoc is an empty API (generateBaseSwaggerApi).
func NewDoc(basePath, apiName string) Doc {
	title := apiName
	if title == "" {
		title = basePath
	}
	return Doc{
		"swagger":  "2.0",
		"info":     map[string]any{"title": title, "version": "1.0.0"},
		"basePath": basePath,
		"paths":    map[string]any{},
		"x-ibm-configuration": map[string]any{
			"assembly": map[string]any{},
			"cors":     map[string]any{"enabled": true},
		},
	}
}

var (
	opIDSep  = regexp.MustCompile(`(?i)[^0-9a-z_-]`)
	opIDWord = regexp.MustCompile(`\w\S*`)
	opIDSp   = regexp.MustCompile(`\s`)
)

// OperationID is the operation id of a verb and relative path
// (makeOperationId): "get" + "/world/{id}" → "getWorldId".
func OperationID(verb, relPath string) string {
	s := opIDSep.ReplaceAllString(relPath, " ")
	s = opIDWord.ReplaceAllStringFunc(s, func(w string) string {
		return strings.ToUpper(w[:1]) + strings.ToLower(w[1:])
	})
	return strings.ToLower(verb) + opIDSp.ReplaceAllString(s, "")
}

// splitActionName splits "a", "pkg/a" or "/ns/pkg/a" into package and name
// (getPackageNameFromFqActionName, getActionNameFromFqActionName).
func splitActionName(fq string) (pkg, name string) {
	parts := strings.Split(strings.TrimPrefix(fq, "/"), "/")
	switch len(parts) {
	case 1:
		return "", parts[0]
	case 2:
		return parts[0], parts[1]
	default:
		return parts[len(parts)-2], parts[len(parts)-1]
	}
}

// webURL is the web action URL of an endpoint's action (makeWebActionBackendUrl):
// scheme and host from its backendUrl, ".{responseType}", and for a target
// URL of an http response "$(request.path)".
func webURL(a *Action, responseType string, target bool) string {
	scheme, host := "https", "localhost"
	if u, err := url.Parse(a.BackendURL); err == nil && u.Host != "" {
		scheme, host = u.Scheme, u.Host
	}
	pkg, name := splitActionName(a.Name)
	if pkg == "" {
		pkg = "default"
	}
	s := scheme + "://" + host + "/api/v1/web/" + a.Namespace + "/" + pkg + "/" + name + "." + responseType
	if target && responseType == "http" {
		s += "$(request.path)"
	}
	return s
}

// AddEndpoint adds ep's path and verb to doc (addEndpointToSwaggerApi);
// the same path and verb again replaces it.
func AddEndpoint(doc Doc, ep Endpoint, responseType string) {
	if responseType == "" {
		responseType = "json"
	}
	verb := strings.ToLower(ep.Method)
	opID := OperationID(verb, ep.RelPath)
	paths := obj(doc, "paths")
	p := obj(paths, ep.RelPath)
	pkg, name := splitActionName(ep.Action.Name)
	op := map[string]any{
		"operationId": opID,
		"x-openwhisk": map[string]any{
			"url":       webURL(ep.Action, responseType, false),
			"namespace": ep.Action.Namespace,
			"package":   pkg,
			"action":    name,
		},
		"responses": map[string]any{"default": map[string]any{"description": "Default response"}},
	}
	if ep.PathParameters != nil {
		params := make([]any, len(ep.PathParameters))
		for i, pp := range ep.PathParameters {
			params[i] = pp
		}
		op["parameters"] = params
	}
	p[verb] = op

	execute := []any{map[string]any{"invoke": map[string]any{"target-url": webURL(ep.Action, responseType, true), "verb": "keep"}}}
	if ep.Action.SecureKey != nil && ep.Action.SecureKey != "" && ep.Action.SecureKey != false {
		execute = append(execute, map[string]any{"set-variable": map[string]any{"actions": []any{
			map[string]any{"set": "message.headers.X-Require-Whisk-Auth", "value": ep.Action.SecureKey},
		}}})
	}
	cases := switchCases(doc)
	c := map[string]any{"operations": []any{opID}, "execute": execute}
	replaced := false
	for i, x := range cases {
		if caseOp(x) == opID {
			cases[i], replaced = c, true
			break
		}
	}
	if !replaced {
		cases = append(cases, c)
	}
	setSwitchCases(doc, cases)
}

// RemoveEndpoint removes a path (every verb when verb is "") from doc
// (removeEndpointFromSwaggerApi); the error is OpenWhisk's message when
// it is not there.
func RemoveEndpoint(doc Doc, relPath, verb string) error {
	verb = strings.ToLower(verb)
	if relPath == "" {
		//lint:ignore ST1005 routemgmt's own message, shown to wsk users as it is
		return errors.New("No path provided; nothing to remove")
	}
	paths := obj(doc, "paths")
	p, ok := paths[relPath].(map[string]any)
	var removed []string
	if verb == "" {
		if !ok {
			return fmt.Errorf("path '%s' does not exist in the API", relPath)
		}
		for v := range p {
			removed = append(removed, OperationID(v, relPath))
		}
		delete(paths, relPath)
	} else {
		if _, has := p[verb]; !ok || !has {
			return fmt.Errorf("path '%s' with operation '%s' does not exist in the API", relPath, verb)
		}
		delete(p, verb)
		if len(p) == 0 {
			delete(paths, relPath)
		}
		removed = []string{OperationID(verb, relPath)}
	}
	cases := switchCases(doc)
	kept := cases[:0]
	for _, c := range cases {
		drop := false
		for _, id := range removed {
			if caseOp(c) == id {
				drop = true
			}
		}
		if !drop {
			kept = append(kept, c)
		}
	}
	if len(cases) > 0 {
		setSwitchCases(doc, kept)
	}
	return nil
}

// Empty reports whether doc has no paths left.
func Empty(doc Doc) bool {
	p, _ := doc["paths"].(map[string]any)
	return len(p) == 0
}

// BasePath is doc's basePath.
func BasePath(doc Doc) string {
	s, _ := doc["basePath"].(string)
	return s
}

// Title is doc's info.title.
func Title(doc Doc) string {
	info, _ := doc["info"].(map[string]any)
	s, _ := info["title"].(string)
	return s
}

// SetNamespace replaces the "_" namespace of every operation's
// x-openwhisk (and its URLs) with ns, as updateNamespace does for apidocs.
func SetNamespace(doc Doc, ns string) {
	paths, _ := doc["paths"].(map[string]any)
	for _, p := range paths {
		ops, _ := p.(map[string]any)
		for _, o := range ops {
			op, _ := o.(map[string]any)
			x, _ := op["x-openwhisk"].(map[string]any)
			if x != nil && x["namespace"] == "_" {
				x["namespace"] = ns
				if u, ok := x["url"].(string); ok {
					x["url"] = strings.Replace(u, "/api/v1/web/_/", "/api/v1/web/"+ns+"/", 1)
				}
			}
		}
	}
}

func obj(m map[string]any, key string) map[string]any {
	v, ok := m[key].(map[string]any)
	if !ok {
		v = map[string]any{}
		m[key] = v
	}
	return v
}

func switchCases(doc Doc) []any {
	cfg, _ := doc["x-ibm-configuration"].(map[string]any)
	asm, _ := cfg["assembly"].(map[string]any)
	exec, _ := asm["execute"].([]any)
	if len(exec) == 0 {
		return nil
	}
	first, _ := exec[0].(map[string]any)
	sw, _ := first["operation-switch"].(map[string]any)
	cases, _ := sw["case"].([]any)
	return cases
}

func setSwitchCases(doc Doc, cases []any) {
	cfg := obj(doc, "x-ibm-configuration")
	asm := obj(cfg, "assembly")
	exec, _ := asm["execute"].([]any)
	if len(exec) == 0 {
		exec = []any{map[string]any{}}
	}
	first, ok := exec[0].(map[string]any)
	if !ok {
		first = map[string]any{}
		exec[0] = first
	}
	sw := obj(first, "operation-switch")
	if cases == nil {
		cases = []any{}
	}
	sw["case"] = cases
	asm["execute"] = exec
}

func caseOp(c any) string {
	m, _ := c.(map[string]any)
	ops, _ := m["operations"].([]any)
	if len(ops) == 0 {
		return ""
	}
	s, _ := ops[0].(string)
	return s
}

// Route is one servable operation of an API.
type Route struct {
	BasePath, RelPath, Verb string // verb upper-case
	Namespace, Package      string // the web action; Package "" = default
	Action, ResponseType    string
	SecureKey               string // "" = none
	segs                    []string
}

// Routes lists doc's operations that name a web action, most specific
// first (fewer path parameters, then longer).
func Routes(doc Doc) []Route {
	base := strings.TrimSuffix(BasePath(doc), "/")
	keys := map[string]string{}
	for _, c := range switchCases(doc) {
		m, _ := c.(map[string]any)
		exec, _ := m["execute"].([]any)
		for _, e := range exec {
			em, _ := e.(map[string]any)
			sv, _ := em["set-variable"].(map[string]any)
			acts, _ := sv["actions"].([]any)
			for _, a := range acts {
				am, _ := a.(map[string]any)
				if am["set"] == "message.headers.X-Require-Whisk-Auth" {
					keys[caseOp(c)] = fmt.Sprint(am["value"])
				}
			}
		}
	}
	var out []Route
	paths, _ := doc["paths"].(map[string]any)
	for rel, p := range paths {
		ops, _ := p.(map[string]any)
		for verb, o := range ops {
			op, _ := o.(map[string]any)
			x, _ := op["x-openwhisk"].(map[string]any)
			if x == nil {
				continue
			}
			r := Route{BasePath: base, RelPath: rel, Verb: strings.ToUpper(verb)}
			r.Namespace, _ = x["namespace"].(string)
			r.Package, _ = x["package"].(string)
			r.Action, _ = x["action"].(string)
			u, _ := x["url"].(string)
			r.ResponseType = "json"
			if i := strings.LastIndexByte(u, '.'); i >= 0 && !strings.Contains(u[i:], "/") {
				r.ResponseType = u[i+1:]
			}
			id, _ := op["operationId"].(string)
			r.SecureKey = keys[id]
			r.segs = strings.Split(strings.Trim(rel, "/"), "/")
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		pi, pj := params(out[i].segs), params(out[j].segs)
		if pi != pj {
			return pi < pj
		}
		if len(out[i].RelPath) != len(out[j].RelPath) {
			return len(out[i].RelPath) > len(out[j].RelPath)
		}
		return out[i].RelPath+out[i].Verb < out[j].RelPath+out[j].Verb
	})
	return out
}

func params(segs []string) int {
	n := 0
	for _, s := range segs {
		if isParam(s) {
			n++
		}
	}
	return n
}

func isParam(s string) bool { return len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' }

// Match reports whether the path below the base path (e.g. "/world/42")
// matches the route's relative path, where a {name} segment matches any one
// non-empty segment.
func (r Route) Match(rel string) bool {
	segs := strings.Split(strings.Trim(rel, "/"), "/")
	if len(segs) != len(r.segs) {
		return false
	}
	for i, s := range r.segs {
		if isParam(s) {
			if segs[i] == "" {
				return false
			}
			continue
		}
		if s != segs[i] {
			return false
		}
	}
	return true
}

// Decode unmarshals JSON keeping numbers exact (a secret from `--web-secure
// true` is a 63-bit integer that a float64 would round).
func Decode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("invalid character after top-level value")
	}
	return nil
}
