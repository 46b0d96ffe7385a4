package apigw

import (
	"encoding/json"
	"testing"
)

func TestOperationID(t *testing.T) {
	for _, c := range []struct{ verb, path, want string }{
		{"get", "/world", "getWorld"},
		{"POST", "/world/{id}", "postWorldId"},
		{"get", "/a-b/c_d/e.f", "getA-bC_dEF"},
		{"delete", "/", "delete"},
		{"get", "/HELLO/World", "getHelloWorld"},
	} {
		if got := OperationID(c.verb, c.path); got != c.want {
			t.Errorf("OperationID(%q, %q) = %q, want %q", c.verb, c.path, got, c.want)
		}
	}
}

func endpoint(rel, verb, action, secure string) Endpoint {
	a := &Action{Name: action, Namespace: "guest", BackendMethod: verb, BackendURL: "http://h:1/api/v1/web/guest/default/x.http", AuthKey: "k"}
	if secure != "" {
		a.SecureKey = secure
	}
	return Endpoint{Namespace: "guest", BasePath: "/hello", RelPath: rel, Method: verb, Action: a}
}

func TestAddRemove(t *testing.T) {
	doc := NewDoc("/hello", "")
	AddEndpoint(doc, endpoint("/world", "GET", "hello", ""), "")
	AddEndpoint(doc, endpoint("/world", "post", "p/a", "s3"), "http")
	AddEndpoint(doc, endpoint("/item/{id}", "GET", "item", ""), "http")
	AddEndpoint(doc, endpoint("/world", "GET", "hello2", ""), "text") // replaces
	b, _ := json.Marshal(doc)
	var back Doc
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if Title(back) != "/hello" || BasePath(back) != "/hello" {
		t.Fatalf("title/base %s", b)
	}
	rs := Routes(back)
	if len(rs) != 3 {
		t.Fatalf("routes %+v", rs)
	}
	got := map[string]Route{}
	for _, r := range rs {
		got[r.Verb+" "+r.RelPath] = r
	}
	if r := got["GET /world"]; r.Action != "hello2" || r.ResponseType != "text" || r.Package != "" || r.Namespace != "guest" {
		t.Fatalf("GET /world %+v", r)
	}
	if r := got["POST /world"]; r.Action != "a" || r.Package != "p" || r.ResponseType != "http" || r.SecureKey != "s3" {
		t.Fatalf("POST /world %+v", r)
	}
	if r := got["GET /item/{id}"]; !r.Match("/item/42") || r.Match("/item") || r.Match("/item/1/2") || r.Match("/other/1") {
		t.Fatalf("match %+v", r)
	}
	if n := len(switchCases(back)); n != 3 {
		t.Fatalf("%d cases: %s", n, b)
	}
	if err := RemoveEndpoint(back, "/world", "delete"); err == nil || err.Error() != "path '/world' with operation 'delete' does not exist in the API" {
		t.Fatalf("remove missing verb: %v", err)
	}
	if err := RemoveEndpoint(back, "/nope", ""); err == nil || err.Error() != "path '/nope' does not exist in the API" {
		t.Fatalf("remove missing path: %v", err)
	}
	if err := RemoveEndpoint(back, "/world", "GET"); err != nil {
		t.Fatal(err)
	}
	if len(Routes(back)) != 2 || len(switchCases(back)) != 2 {
		t.Fatalf("after removing GET /world: %+v", Routes(back))
	}
	if err := RemoveEndpoint(back, "/world", ""); err != nil {
		t.Fatal(err)
	}
	if err := RemoveEndpoint(back, "/item/{id}", "get"); err != nil {
		t.Fatal(err)
	}
	if !Empty(back) || len(switchCases(back)) != 0 {
		t.Fatalf("not empty: %v", back)
	}
}

func TestSetNamespace(t *testing.T) {
	doc := NewDoc("/b", "name")
	ep := endpoint("/x", "get", "a", "")
	ep.Action.Namespace = "_"
	AddEndpoint(doc, ep, "json")
	SetNamespace(doc, "guest")
	r := Routes(doc)[0]
	if r.Namespace != "guest" || Title(doc) != "name" {
		t.Fatalf("%+v", r)
	}
	x := doc["paths"].(map[string]any)["/x"].(map[string]any)["get"].(map[string]any)["x-openwhisk"].(map[string]any)
	if x["url"] != "http://h:1/api/v1/web/guest/default/a.json" {
		t.Fatalf("url %v", x["url"])
	}
}

func TestNumericSecureKey(t *testing.T) {
	var ep Endpoint
	if err := Decode([]byte(`{"gatewayBasePath":"/b","gatewayPath":"/x","gatewayMethod":"get","action":{"name":"a","namespace":"guest","secureKey":8857097005573354925}}`), &ep); err != nil {
		t.Fatal(err)
	}
	doc := NewDoc("/b", "")
	AddEndpoint(doc, ep, "json")
	b, _ := json.Marshal(doc)
	var back Doc
	if err := Decode(b, &back); err != nil {
		t.Fatal(err)
	}
	if k := Routes(back)[0].SecureKey; k != "8857097005573354925" {
		t.Fatalf("secure key %q", k)
	}
}
