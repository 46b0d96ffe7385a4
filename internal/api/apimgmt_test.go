package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// createBody is the body `wsk api create` sends (reference §7.1).
func createBody(base, rel, verb, action, apiName, host string, params bool) string {
	doc := map[string]any{
		"namespace": "_", "gatewayBasePath": base, "gatewayPath": rel, "gatewayMethod": strings.ToUpper(verb),
		"id": "API:_:" + base,
		"action": map[string]any{"name": action, "namespace": "_", "backendMethod": strings.ToUpper(verb),
			"backendUrl": host + "/api/v1/web/_/default/" + action + ".http", "authkey": whisk.GuestUUID + ":" + whisk.GuestKey},
	}
	if apiName != "" {
		doc["apiName"] = apiName
	}
	if action == "item" { // as the CLI does for an action with require-whisk-auth
		doc["action"].(map[string]any)["secureKey"] = "k3y"
	}
	if params {
		doc["pathParameters"] = []any{map[string]any{"name": "id", "in": "path", "description": "Default description for 'id'", "required": true, "type": "string"}}
	}
	b, _ := json.Marshal(map[string]any{"apidoc": doc})
	return string(b)
}

const mgmt = "/api/v1/web/whisk.system/apimgmt/"

func mgmtQuery(extra string) string {
	return "?accesstoken=DUMMY+TOKEN&spaceguid=" + whisk.GuestUUID + extra
}

func TestAPIGateway(t *testing.T) {
	r := newRig(t)
	webPut(t, r, "hello", `[{"key":"web-export","value":true}]`, "")
	webPut(t, r, "item", `[{"key":"web-export","value":true},{"key":"require-whisk-auth","value":"k3y"}]`, "")
	r.inv.set(echo(0))

	create := func(body, rt string) resp {
		return r.web(t, webReq{method: "POST", path: mgmt + "createApi.http" + mgmtQuery("&responsetype="+rt), ctype: "application/json", body: body, who: asGuest})
	}
	res := create(createBody("/hello", "/world", "get", "hello", "", r.srv.URL, false), "json")
	if res.status != 200 {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	var created cliAPI
	if err := json.Unmarshal(res.body, &created); err != nil {
		t.Fatal(err)
	}
	wantURL := r.srv.URL + "/api/" + whisk.GuestUUID + "/hello"
	if created.GwAPIURL != wantURL || !created.GwAPIActivated {
		t.Fatalf("created %+v", created)
	}
	x := created.APIDoc["paths"].(map[string]any)["/world"].(map[string]any)["get"].(map[string]any)["x-openwhisk"].(map[string]any)
	if x["namespace"] != "guest" || x["action"] != "hello" || x["url"] != r.srv.URL+"/api/v1/web/guest/default/hello.json" {
		t.Fatalf("x-openwhisk %v", x)
	}
	// Path parameters need .http.
	res = create(createBody("/hello", "/item/{id}", "post", "item", "", r.srv.URL, true), "json")
	if res.status != 502 || !strings.Contains(string(res.body), "response type of '.http'") {
		t.Fatalf("param path with json: %d %s", res.status, res.body)
	}
	if res = create(createBody("/hello", "/item/{id}", "post", "item", "", r.srv.URL, true), "http"); res.status != 200 {
		t.Fatalf("create param: %d %s", res.status, res.body)
	}

	// The routes answer at the managed URL.
	res = r.web(t, webReq{method: "GET", path: "/api/" + whisk.GuestUUID + "/hello/world?a=1"})
	if m := res.json(t); res.status != 200 || m["a"] != "1" || m["__ow_path"] != "" || m["__ow_method"] != "get" {
		t.Fatalf("route: %d %s", res.status, res.body)
	}
	r.inv.set(returns(0, `{"body":"posted"}`))
	res = r.web(t, webReq{method: "POST", path: "/api/" + whisk.GuestUUID + "/hello/item/42"})
	if res.status != 200 || string(res.body) != "posted" {
		t.Fatalf("param route: %d %s", res.status, res.body)
	}
	r.inv.set(echo(0))
	res = r.web(t, webReq{method: "POST", path: "/api/" + whisk.GuestUUID + "/hello/item/42"})
	// The secure key reaches the action's check, __ow_path is the relative path.
	if res.status != 204 {
		t.Fatalf("echo param route: %d %s", res.status, res.body)
	}
	if p := string(r.inv.last().Params); !strings.Contains(p, `"__ow_path":"/item/42"`) || !strings.Contains(p, `"x-require-whisk-auth":"k3y"`) {
		t.Fatalf("args %s", p)
	}
	for _, c := range []struct{ method, path string }{
		{"POST", "/hello/world"},       // wrong verb
		{"GET", "/hello/nope"},         // no such path
		{"GET", "/hello/item/1/2"},     // too deep
		{"GET", "/other/world"},        // no such API
		{"GET", "/hello"},              // base path only
		{"GET", "/helloworld"},         // not a base path
		{"DELETE", "/hello/item/{id}"}, // literal pattern, wrong verb
	} {
		wantWebError(t, r.web(t, webReq{method: c.method, path: "/api/" + whisk.GuestUUID + c.path}), 404, whisk.MsgNotFound)
	}
	wantWebError(t, r.web(t, webReq{method: "GET", path: "/api/" + otherUUID + "/hello/world"}), 404, whisk.MsgNotFound)
	res = r.web(t, webReq{method: "OPTIONS", path: "/api/" + whisk.GuestUUID + "/hello/world"})
	if res.status != 200 || res.hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight %d %v", res.status, res.hdr)
	}

	// getApi: all, by base path, by name; another namespace sees none.
	get := func(q, who string) []cliAPIEntry {
		t.Helper()
		res := r.web(t, webReq{method: "GET", path: mgmt + "getApi.http" + mgmtQuery(q), who: who})
		if res.status != 200 {
			t.Fatalf("getApi%s: %d %s", q, res.status, res.body)
		}
		var out struct{ APIs []cliAPIEntry }
		if err := json.Unmarshal(res.body, &out); err != nil {
			t.Fatal(err)
		}
		return out.APIs
	}
	if apis := get("&limit=30&skip=0", asGuest); len(apis) != 1 || len(apis[0].Value.APIDoc["paths"].(map[string]any)) != 2 {
		t.Fatalf("list %+v", apis)
	}
	if apis := get("&basepath=%2Fhello", asGuest); len(apis) != 1 || apis[0].Value.GwAPIURL != wantURL {
		t.Fatalf("get %+v", apis)
	}
	if apis := get("&basepath=%2Fnope", asGuest); len(apis) != 0 {
		t.Fatalf("get missing %+v", apis)
	}
	if apis := get("", "other"); len(apis) != 0 {
		t.Fatalf("other namespace sees %+v", apis)
	}
	if res := create(createBody("/named", "/x", "get", "hello", "MyApi", r.srv.URL, false), "json"); res.status != 200 {
		t.Fatalf("create named: %d %s", res.status, res.body)
	}
	if apis := get("&basepath=MyApi", asGuest); len(apis) != 1 || apis[0].Value.APIDoc["basePath"] != "/named" {
		t.Fatalf("get by name %+v", apis)
	}

	// Errors: 502 {"error"}.
	for _, c := range []struct {
		method, path, body, who, msg string
	}{
		{"POST", mgmt + "createApi.http" + mgmtQuery(""), createBody("/a", "/b", "get", "hello", "", "", false), noAuth, msgAuthKeyRequired},
		{"GET", mgmt + "getApi.http" + mgmtQuery(""), "", noAuth, msgInvalidAuth},
		{"POST", mgmt + "createApi.http" + mgmtQuery(""), `{}`, asGuest, "apidoc is required."},
		{"POST", mgmt + "createApi.http" + mgmtQuery(""), `{"apidoc":{"namespace":"_"}}`, asGuest, "apidoc is missing the gatewayBasePath field"},
		{"DELETE", mgmt + "deleteApi.http" + mgmtQuery(""), "", asGuest, "basepath is required."},
		{"DELETE", mgmt + "deleteApi.http" + mgmtQuery("&basepath=%2Fnope"), "", asGuest, "API deletion failure: API '/nope' does not exist."},
		{"DELETE", mgmt + "deleteApi.http" + mgmtQuery("&basepath=%2Fhello&operation=GET"), "", asGuest, "When specifying an operation, the path is required."},
		{"DELETE", mgmt + "deleteApi.http" + mgmtQuery("&basepath=%2Fhello&relpath=%2Fworld&operation=PUT"), "", asGuest, "API deletion failure: path '/world' with operation 'put' does not exist in the API"},
	} {
		res := r.web(t, webReq{method: c.method, path: c.path, ctype: "application/json", body: c.body, who: c.who})
		var e map[string]any
		if err := json.Unmarshal(res.body, &e); err != nil || res.status != 502 || e["error"] != c.msg || len(e) != 1 {
			t.Fatalf("%s %s: %d %s, want 502 %q", c.method, c.path, res.status, res.body, c.msg)
		}
	}
	wantWebError(t, r.web(t, webReq{method: "GET", path: mgmt + "nope.http", who: asGuest}), 404, whisk.MsgNotFound)

	// deleteApi: one verb, then the whole API.
	del := func(q string) {
		t.Helper()
		if res := r.web(t, webReq{method: "DELETE", path: mgmt + "deleteApi.http" + mgmtQuery(q), who: asGuest}); res.status != 200 {
			t.Fatalf("delete%s: %d %s", q, res.status, res.body)
		}
	}
	del("&basepath=%2Fhello&relpath=%2Fworld&operation=GET")
	wantWebError(t, r.web(t, webReq{method: "GET", path: "/api/" + whisk.GuestUUID + "/hello/world"}), 404, whisk.MsgNotFound)
	if apis := get("&basepath=%2Fhello", asGuest); len(apis) != 1 {
		t.Fatalf("after deleting a verb %+v", apis)
	}
	del("&basepath=%2Fhello")
	if apis := get("&basepath=%2Fhello", asGuest); len(apis) != 0 {
		t.Fatalf("after delete %+v", apis)
	}
	wantWebError(t, r.web(t, webReq{method: "POST", path: "/api/" + whisk.GuestUUID + "/hello/item/1"}), 404, whisk.MsgNotFound)
}
