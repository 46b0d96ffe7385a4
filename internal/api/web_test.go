package api

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/web"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// webPut creates an action with the given annotations and parameters.
func webPut(t *testing.T, r *rig, name, annotations, params string) {
	t.Helper()
	body := `{"exec":{"kind":"python:3.11","code":"def main(a):\n  return a"},"annotations":` + annotations
	if params != "" {
		body += `,"parameters":` + params
	}
	body += "}"
	if res := r.do(t, "PUT", "/api/v1/namespaces/_/actions/"+name+"?overwrite=true", body, asGuest); res.status != 200 {
		t.Fatalf("create %s: %d %s", name, res.status, res.body)
	}
}

// echo answers every invocation with its arguments as the result (or
// under "error" with code 1).
func echo(code int) func(controller.Request) (controller.Result, error) {
	return func(req controller.Request) (controller.Result, error) {
		id := whisk.NewActivationID()
		res := string(req.Params)
		if code == whisk.StatusApplicationError {
			res = `{"error":` + res + `}`
		}
		a := record(id, req.Action.Name, 1, code, res)
		return controller.Result{ActivationID: id, Activation: &a}, nil
	}
}

// returns answers every invocation with result.
func returns(code int, result string) func(controller.Request) (controller.Result, error) {
	return func(req controller.Request) (controller.Result, error) {
		id := whisk.NewActivationID()
		a := record(id, req.Action.Name, 1, code, result)
		return controller.Result{ActivationID: id, Activation: &a}, nil
	}
}

type webReq struct {
	method, path, ctype, body string
	hdr                       map[string]string
	who                       string
}

func (r *rig) web(t *testing.T, q webReq) resp {
	t.Helper()
	var rd io.Reader
	if q.body != "" {
		rd = strings.NewReader(q.body)
	}
	req, err := http.NewRequest(q.method, r.srv.URL+q.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if q.ctype != "" {
		req.Header.Set("Content-Type", q.ctype)
	}
	for k, v := range q.hdr {
		req.Header.Set(k, v)
	}
	switch q.who {
	case asGuest:
		req.SetBasicAuth(whisk.GuestUUID, whisk.GuestKey)
	case "other":
		req.SetBasicAuth(otherUUID, otherKey)
	case noAuth:
	default:
		req.Header.Set("Authorization", q.who)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{status: res.StatusCode, hdr: res.Header, body: b}
}

// wantWebError checks a pretty-printed web error.
func wantWebError(t *testing.T, r resp, status int, msg string) {
	t.Helper()
	wantError(t, r, status, msg)
	if !strings.HasPrefix(string(r.body), "{\n  \"error\": ") {
		t.Fatalf("error body not pretty-printed: %q", r.body)
	}
}

func TestWebActions(t *testing.T) {
	r := newRig(t)
	webPut(t, r, "w", `[{"key":"web-export","value":true},{"key":"final","value":true}]`, `[{"key":"fixed","value":"f"},{"key":"open","value":null}]`)
	webPut(t, r, "raw", `[{"key":"web-export","value":true},{"key":"raw-http","value":true}]`, "")
	webPut(t, r, "hidden", `[{"key":"web-export","value":false}]`, "")
	webPut(t, r, "strweb", `[{"key":"web-export","value":"true"}]`, "")
	webPut(t, r, "secure", `[{"key":"web-export","value":true},{"key":"require-whisk-auth","value":true}]`, "")
	webPut(t, r, "secret", `[{"key":"web-export","value":true},{"key":"require-whisk-auth","value":"s3cret"}]`, "")
	webPut(t, r, "custom", `[{"key":"web-export","value":true},{"key":"web-custom-options","value":true}]`, "")
	r.inv.set(echo(0))

	t.Run("json echo", func(t *testing.T) {
		res := r.web(t, webReq{method: "POST", path: "/api/v1/web/guest/default/w.json/a/b?q=1", ctype: "application/json", body: `{"name":"Ada"}`})
		if res.status != 200 || res.hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("%d %v %s", res.status, res.hdr, res.body)
		}
		if !strings.HasPrefix(string(res.body), "{\n  \"") {
			t.Fatalf("not pretty: %s", res.body)
		}
		m := res.json(t)
		if m["name"] != "Ada" || m["q"] != "1" || m["__ow_method"] != "post" || m["__ow_path"] != "/a/b" {
			t.Fatalf("args %s", res.body)
		}
		if _, ok := m["__ow_user"]; ok {
			t.Fatalf("anonymous call has __ow_user: %s", res.body)
		}
		if res.hdr.Get("X-Openwhisk-Activation-Id") == "" || res.hdr.Get("Access-Control-Allow-Origin") != "*" ||
			res.hdr.Get("Access-Control-Allow-Methods") != web.AllowMethods {
			t.Fatalf("headers %v", res.hdr)
		}
		req := r.inv.last()
		if req.Identity.Namespace != "guest" || !req.Blocking || req.Action.Name != "w" {
			t.Fatalf("invoke %+v", req)
		}
	})
	t.Run("user when authenticated", func(t *testing.T) {
		res := r.web(t, webReq{method: "GET", path: "/api/v1/web/guest/default/w.json", who: "other"})
		if m := res.json(t); res.status != 200 || m["__ow_user"] != "other" {
			t.Fatalf("%d %s", res.status, res.body)
		}
		// Bad credentials: anonymous, not refused.
		res = r.web(t, webReq{method: "GET", path: "/api/v1/web/guest/default/w.json", who: "Basic Zm9vOmJhcg=="})
		if m := res.json(t); res.status != 200 || m["__ow_user"] != nil {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
	t.Run("raw form post", func(t *testing.T) {
		res := r.web(t, webReq{method: "POST", path: "/api/v1/web/guest/default/raw.json?a=1&__ow_x=2", ctype: "application/x-www-form-urlencoded", body: "x=1&y=2"})
		m := res.json(t)
		if res.status != 200 || m["__ow_body"] != "x=1&y=2" || m["__ow_query"] != "a=1&__ow_x=2" || m["x"] != nil {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
	t.Run("http default extension", func(t *testing.T) {
		r.inv.set(returns(0, `{"statusCode":201,"headers":{"X-A":["1","2"],"Content-Type":"text/plain"},"body":"made"}`))
		defer r.inv.set(echo(0))
		for _, p := range []string{"/api/v1/web/guest/default/w", "/api/v1/web/guest/default/w.http"} {
			res := r.web(t, webReq{method: "GET", path: p})
			if res.status != 201 || string(res.body) != "made" || res.hdr.Get("Content-Type") != "text/plain; charset=UTF-8" ||
				strings.Join(res.hdr.Values("X-A"), ",") != "1,2" {
				t.Fatalf("%s: %d %v %q", p, res.status, res.hdr, res.body)
			}
		}
	})
	t.Run("http binary", func(t *testing.T) {
		r.inv.set(returns(0, `{"headers":{"Content-Type":"image/png"},"body":"iVBORw=="}`))
		defer r.inv.set(echo(0))
		res := r.web(t, webReq{method: "GET", path: "/api/v1/web/guest/default/w.http"})
		if res.status != 200 || string(res.body) != "\x89PNG" || res.hdr.Get("Content-Type") != "image/png" {
			t.Fatalf("%d %v %q", res.status, res.hdr, res.body)
		}
	})
	t.Run("header injection refused", func(t *testing.T) {
		r.inv.set(returns(0, `{"headers":{"X-A":"1\r\nSet-Cookie: evil=1"},"body":"x"}`))
		defer r.inv.set(echo(0))
		res := r.web(t, webReq{method: "GET", path: "/api/v1/web/guest/default/w.http"})
		wantWebError(t, res, 400, "Response is not valid 'message/http'.")
		if res.hdr.Get("Set-Cookie") != "" {
			t.Fatalf("injected: %v", res.hdr)
		}
	})
	t.Run("application error", func(t *testing.T) {
		r.inv.set(returns(1, `{"error":{"statusCode":404,"body":"nope"}}`))
		defer r.inv.set(echo(0))
		res := r.web(t, webReq{method: "GET", path: "/api/v1/web/guest/default/w.http"})
		if res.status != 404 || string(res.body) != "nope" {
			t.Fatalf("%d %q", res.status, res.body)
		}
	})
	t.Run("developer error", func(t *testing.T) {
		r.inv.set(returns(2, `{"error":"crash"}`))
		defer r.inv.set(echo(0))
		wantWebError(t, r.web(t, webReq{method: "GET", path: "/api/v1/web/guest/default/w.json"}), 400, web.MsgErrorProcessing)
	})
	t.Run("not ready", func(t *testing.T) {
		id := whisk.NewActivationID()
		r.inv.set(func(controller.Request) (controller.Result, error) { return controller.Result{ActivationID: id}, nil })
		defer r.inv.set(echo(0))
		res := r.web(t, webReq{method: "GET", path: "/api/v1/web/guest/default/w.json"})
		wantWebError(t, res, 202, web.MsgResponseNotReady)
		if res.hdr.Get("X-Openwhisk-Activation-Id") != string(id) {
			t.Fatalf("activation id header %v", res.hdr)
		}
	})
	t.Run("throttled", func(t *testing.T) {
		r.inv.set(func(controller.Request) (controller.Result, error) {
			return controller.Result{}, whisk.ThrottledError("fake", &whisk.Throttle{Limit: whisk.LimitInvocationsPerMinute, Count: 2, Allowed: 1})
		})
		defer r.inv.set(echo(0))
		res := r.web(t, webReq{method: "GET", path: "/api/v1/web/guest/default/w.json"})
		if res.status != 429 {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
	t.Run("not acceptable", func(t *testing.T) {
		res := r.web(t, webReq{method: "GET", path: "/api/v1/web/guest/default/w.json", hdr: map[string]string{"Accept": "text/html"}})
		if res.status != 406 || !strings.Contains(string(res.body), "application/json") {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
	t.Run("cors preflight", func(t *testing.T) {
		n := len(r.inv.reqs)
		res := r.web(t, webReq{method: "OPTIONS", path: "/api/v1/web/guest/default/secure.json", hdr: map[string]string{"Access-Control-Request-Headers": "X-Foo"}})
		if res.status != 200 || len(res.body) != 0 || res.hdr.Get("Access-Control-Allow-Headers") != "X-Foo" {
			t.Fatalf("%d %v %q", res.status, res.hdr, res.body)
		}
		if len(r.inv.reqs) != n {
			t.Fatal("OPTIONS invoked the action")
		}
	})
	t.Run("custom options", func(t *testing.T) {
		r.inv.set(returns(0, `{"statusCode":200,"headers":{"Access-Control-Allow-Origin":"https://x"}}`))
		defer r.inv.set(echo(0))
		n := len(r.inv.reqs)
		res := r.web(t, webReq{method: "OPTIONS", path: "/api/v1/web/guest/default/custom.http"})
		if res.status != 200 || res.hdr.Get("Access-Control-Allow-Origin") != "https://x" || res.hdr.Get("Access-Control-Allow-Methods") != "" {
			t.Fatalf("%d %v", res.status, res.hdr)
		}
		if len(r.inv.reqs) != n+1 {
			t.Fatal("OPTIONS did not invoke the action")
		}
	})
	t.Run("head", func(t *testing.T) {
		res := r.web(t, webReq{method: "HEAD", path: "/api/v1/web/guest/default/w.json"})
		if res.status != 200 || len(res.body) != 0 {
			t.Fatalf("%d %q", res.status, res.body)
		}
	})

	for _, c := range []struct {
		name string
		q    webReq
		code int
		msg  string
	}{
		{"not exported", webReq{method: "GET", path: "/api/v1/web/guest/default/hidden.json"}, 404, whisk.MsgNotFound},
		{"web-export string", webReq{method: "GET", path: "/api/v1/web/guest/default/strweb.json"}, 404, whisk.MsgNotFound},
		{"missing action", webReq{method: "GET", path: "/api/v1/web/guest/default/nope.json"}, 404, whisk.MsgNotFound},
		{"unknown extension is a name", webReq{method: "GET", path: "/api/v1/web/guest/default/w.xml"}, 404, whisk.MsgNotFound},
		{"unknown namespace", webReq{method: "GET", path: "/api/v1/web/nobody/default/w.json"}, 404, whisk.MsgNotFound},
		{"underscore namespace", webReq{method: "GET", path: "/api/v1/web/_/default/w.json", who: asGuest}, 404, whisk.MsgNotFound},
		{"other namespace's action", webReq{method: "GET", path: "/api/v1/web/other/default/w.json", who: asGuest}, 404, whisk.MsgNotFound},
		{"package not found", webReq{method: "GET", path: "/api/v1/web/guest/pkg/w.json"}, 404, whisk.MsgNotFound},
		{"too few segments", webReq{method: "GET", path: "/api/v1/web/guest/default"}, 404, whisk.MsgNotFound},
		{"bad name", webReq{method: "GET", path: "/api/v1/web/guest/default/%3Cx%3E"}, 404, whisk.MsgNotFound},
		{"method", webReq{method: "TRACE", path: "/api/v1/web/guest/default/w.json"}, 405, whisk.MsgMethodNotAllowed},
		{"secure without auth", webReq{method: "GET", path: "/api/v1/web/guest/default/secure.json"}, 401, whisk.MsgAuthInvalid},
		{"secret without header", webReq{method: "GET", path: "/api/v1/web/guest/default/secret.json"}, 401, whisk.MsgAuthInvalid},
		{"secret wrong header", webReq{method: "GET", path: "/api/v1/web/guest/default/secret.json", hdr: map[string]string{"X-Require-Whisk-Auth": "no"}}, 401, whisk.MsgAuthInvalid},
		{"reserved query", webReq{method: "GET", path: "/api/v1/web/guest/default/w.json?__ow_user=root"}, 400, whisk.MsgReservedParams},
		{"final query", webReq{method: "GET", path: "/api/v1/web/guest/default/w.json?fixed=x"}, 400, whisk.MsgReservedParams},
		{"final body", webReq{method: "POST", path: "/api/v1/web/guest/default/w.json", ctype: "application/json", body: `{"fixed":1}`}, 400, whisk.MsgReservedParams},
		{"invalid json", webReq{method: "POST", path: "/api/v1/web/guest/default/w.json", ctype: "application/json", body: `{"a":`}, 400, whisk.MsgMalformed + "..."},
		{"too large", webReq{method: "POST", path: "/api/v1/web/guest/default/w.json", ctype: "text/plain", body: strings.Repeat("x", 1025)}, 413, "Request larger than allowed: 1025 > 1024 bytes."},
	} {
		t.Run(c.name, func(t *testing.T) { wantWebError(t, r.web(t, c.q), c.code, c.msg) })
	}

	t.Run("open parameter may be set", func(t *testing.T) {
		res := r.web(t, webReq{method: "GET", path: "/api/v1/web/guest/default/w.json?open=x"})
		if res.status != 200 || res.json(t)["open"] != "x" {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
	t.Run("secured callers", func(t *testing.T) {
		for _, q := range []webReq{
			{method: "GET", path: "/api/v1/web/guest/default/secure.json", who: "other"},
			{method: "GET", path: "/api/v1/web/guest/default/secret.json", hdr: map[string]string{"X-Require-Whisk-Auth": "s3cret"}},
		} {
			if res := r.web(t, q); res.status != 200 {
				t.Fatalf("%s: %d %s", q.path, res.status, res.body)
			}
		}
	})
	t.Run("every method", func(t *testing.T) {
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			res := r.web(t, webReq{method: m, path: "/api/v1/web/guest/default/w.json"})
			var args map[string]any
			if err := json.Unmarshal(res.body, &args); res.status != 200 || err != nil || args["__ow_method"] != strings.ToLower(m) {
				t.Fatalf("%s: %d %s", m, res.status, res.body)
			}
		}
	})
}

func TestWebActionsInPackages(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	putPkg := func(p whisk.Package) {
		t.Helper()
		doc, _ := json.Marshal(p)
		if _, err := r.store.PutEntity(ctx, whisk.Entity{Kind: whisk.EntityPackage, Namespace: p.Namespace, Name: p.Name, Publish: p.Publish, Doc: doc}, 0); err != nil {
			t.Fatal(err)
		}
	}
	putAction := func(ns, name, annotations string) {
		t.Helper()
		var ann whisk.Params
		_ = json.Unmarshal([]byte(annotations), &ann)
		a := whisk.Action{Namespace: ns, Name: name, Version: "0.0.1", Exec: whisk.Exec{Kind: "python:3.11", Code: "x"},
			Annotations: ann, Parameters: whisk.Params{{Key: "from", Value: json.RawMessage(`"action"`)}},
			Limits: whisk.DefaultSystemLimits().Defaults()}
		if _, err := r.store.PutAction(ctx, a, 0); err != nil {
			t.Fatal(err)
		}
	}
	putPkg(whisk.Package{Namespace: "other", Name: "lib", Publish: true, Parameters: whisk.Params{{Key: "pkg", Value: json.RawMessage(`"lib"`)}}})
	putPkg(whisk.Package{Namespace: "other", Name: "private"})
	putAction("other", "lib/w", `[{"key":"web-export","value":true}]`)
	putAction("other", "lib/hidden", `[]`)
	putAction("other", "private/w", `[{"key":"web-export","value":true}]`)
	putPkg(whisk.Package{Namespace: "guest", Name: "bound", Binding: whisk.Binding{Namespace: "other", Name: "lib"},
		Parameters:  whisk.Params{{Key: "bind", Value: json.RawMessage(`"guest"`)}},
		Annotations: whisk.Params{{Key: "web-export", Value: json.RawMessage("true")}}})
	putPkg(whisk.Package{Namespace: "guest", Name: "badbind", Binding: whisk.Binding{Namespace: "other", Name: "private"}})
	r.inv.set(echo(0))

	params := func() string {
		b, _ := json.Marshal(r.inv.last().Action.Parameters)
		return string(b)
	}
	res := r.web(t, webReq{method: "GET", path: "/api/v1/web/other/lib/w.json"})
	if p := params(); res.status != 200 || !strings.Contains(p, `"pkg"`) || !strings.Contains(p, `"from"`) {
		t.Fatalf("packaged: %d %s %s", res.status, res.body, p)
	}
	res = r.web(t, webReq{method: "GET", path: "/api/v1/web/guest/bound/w.json"})
	if p := params(); res.status != 200 || !strings.Contains(p, `"bind"`) || !strings.Contains(p, `"pkg"`) {
		t.Fatalf("binding: %d %s %s", res.status, res.body, p)
	}
	if req := r.inv.last(); req.Identity.Namespace != "guest" || req.Binding != "guest/bound" || req.Action.Namespace != "other" {
		t.Fatalf("binding invoke: identity %s binding %q action %s", req.Identity.Namespace, req.Binding, req.Action.Namespace)
	}
	// Not exported (a binding's annotation does not count), private
	// package through a binding, missing package: all 404.
	for _, p := range []string{"/api/v1/web/guest/bound/hidden.json", "/api/v1/web/guest/badbind/w.json", "/api/v1/web/guest/nopkg/w.json"} {
		wantWebError(t, r.web(t, webReq{method: "GET", path: p}), 404, whisk.MsgNotFound)
	}
	// The owner of a private package's namespace reaches its own actions.
	if res := r.web(t, webReq{method: "GET", path: "/api/v1/web/other/private/w.json"}); res.status != 200 {
		t.Fatalf("own private package: %d %s", res.status, res.body)
	}
}
