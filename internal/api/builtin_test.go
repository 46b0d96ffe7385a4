package api

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// echoBuiltin is a built-in package "whisk.system/actions/demo" whose
// action "ok" answers its params and "fail" fails with them.
type echoBuiltin struct{ caller whisk.Identity }

func (*echoBuiltin) BuiltinPath() string { return "whisk.system/actions/demo" }

func (b *echoBuiltin) InvokeBuiltin(_ context.Context, caller whisk.Identity, name string, params json.RawMessage) (json.RawMessage, bool) {
	b.caller = caller
	switch name {
	case "ok":
		return params, true
	case "fail":
		return json.RawMessage(`{"error":{"error":"no"}}`), false
	}
	return nil, false
}

func TestBuiltinActions(t *testing.T) {
	r := newRig(t)
	b := &echoBuiltin{}
	h := newHandler(t, Config{Limits: r.limits}, Deps{
		Store: r.store, Invoker: r.inv, Runtimes: manifest.Default(), Topics: r.bus, Builtins: b, Records: r.store,
	})
	r.srv = httptest.NewServer(h)
	t.Cleanup(r.srv.Close)

	// Any namespace may invoke them; the record is the caller's.
	res := r.do(t, "POST", "/api/v1/namespaces/whisk.system/actions/demo/ok?blocking=true", `{"a":1}`, "other")
	if res.status != 200 {
		t.Fatalf("ok: %d %s", res.status, res.body)
	}
	var act whisk.Activation
	if err := json.Unmarshal(res.body, &act); err != nil {
		t.Fatal(err)
	}
	if act.Namespace != "other" || act.Name != "ok" || string(act.Response.Result) != `{"a":1}` || b.caller.Namespace != "other" {
		t.Fatalf("activation %+v (caller %+v)", act, b.caller)
	}
	if v, _ := act.Annotations.Get(whisk.AnnPath); string(v) != `"whisk.system/demo/ok"` {
		t.Errorf("path annotation %s", v)
	}
	stored, err := r.store.GetActivation(context.Background(), "other", act.ActivationID)
	if err != nil || stored.Response.StatusCode != whisk.StatusSuccess {
		t.Fatalf("stored record %+v %v", stored, err)
	}
	// A failure is an application error: 502, the result as given.
	res = r.do(t, "POST", "/api/v1/namespaces/whisk.system/actions/demo/fail?blocking=true&result=true", `{}`, asGuest)
	if res.status != 502 || string(res.body) != `{"error":{"error":"no"}}` {
		t.Fatalf("fail: %d %s", res.status, res.body)
	}
	// Non-blocking: 202 with the id.
	res = r.do(t, "POST", "/api/v1/namespaces/whisk.system/actions/demo/ok", ``, asGuest)
	if res.status != 202 || res.json(t)["activationId"] == nil {
		t.Fatalf("non-blocking: %d %s", res.status, res.body)
	}
	// An unknown name, bad bodies, no key.
	if res = r.do(t, "POST", "/api/v1/namespaces/whisk.system/actions/demo/nope?blocking=true", `{}`, asGuest); res.status != 404 {
		t.Errorf("unknown: %d %s", res.status, res.body)
	}
	if res = r.do(t, "POST", "/api/v1/namespaces/whisk.system/actions/demo/ok?blocking=true", `[1]`, asGuest); res.status != 400 {
		t.Errorf("array body: %d %s", res.status, res.body)
	}
	if res = r.do(t, "POST", "/api/v1/namespaces/whisk.system/actions/demo/ok?blocking=true", `{}`, noAuth); res.status != 401 {
		t.Errorf("no key: %d %s", res.status, res.body)
	}
	// Other methods on the path are the actions route's (another namespace: 403).
	if res = r.do(t, "GET", "/api/v1/namespaces/whisk.system/actions/demo/ok", ``, asGuest); res.status != 403 {
		t.Errorf("GET: %d %s", res.status, res.body)
	}
}

// TestBuiltinThroughBinding: a built-in action reached through a binding
// of its package (wsk trigger create t --feed mybinding/alarm) runs the
// built-in, not the stored placeholder, with the parameters merged
// package < binding < action < body as OpenWhisk merges them, and its
// record names the binding.
func TestBuiltinThroughBinding(t *testing.T) {
	r := newRig(t)
	b := &echoBuiltin{}
	h := newHandler(t, Config{Limits: r.limits}, Deps{
		Store: r.store, Invoker: r.inv, Runtimes: manifest.Default(), Topics: r.bus, Builtins: b, Records: r.store,
	})
	r.srv = httptest.NewServer(h)
	t.Cleanup(r.srv.Close)
	ctx := context.Background()
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	pkg := whisk.Package{Namespace: "whisk.system", Name: "demo", Version: "0.0.1", Publish: true,
		Parameters: whisk.Params{{Key: "p", Value: raw(`"package"`)}, {Key: "q", Value: raw(`"package"`)}, {Key: "r", Value: raw(`"package"`)}}}
	e, err := pkg.Entity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.PutEntity(ctx, e, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.PutAction(ctx, whisk.Action{Namespace: "whisk.system", Name: "demo/ok", Version: "0.0.1",
		Exec:       whisk.Exec{Kind: "nodejs:18", Code: "function main(){return {error: 'placeholder'}}"},
		Parameters: whisk.Params{{Key: "a", Value: raw(`"action"`)}}, Limits: whisk.DefaultSystemLimits().Defaults()}, 0); err != nil {
		t.Fatal(err)
	}
	if res := r.do(t, "PUT", "/api/v1/namespaces/_/packages/mydemo", `{"binding":{"namespace":"whisk.system","name":"demo"},"parameters":[{"key":"q","value":"binding"},{"key":"r","value":"binding"}]}`, asGuest); res.status != 200 {
		t.Fatalf("bind: %d %s", res.status, res.body)
	}
	res := r.do(t, "POST", "/api/v1/namespaces/_/actions/mydemo/ok?blocking=true", `{"r":"body","lifecycleEvent":"CREATE"}`, asGuest)
	if res.status != 200 {
		t.Fatalf("invoke through the binding: %d %s", res.status, res.body)
	}
	var act whisk.Activation
	if err := json.Unmarshal(res.body, &act); err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(act.Response.Result, &got); err != nil {
		t.Fatalf("result %s: %v", act.Response.Result, err)
	}
	want := map[string]string{"p": "package", "q": "binding", "r": "body", "a": "action", "lifecycleEvent": "CREATE"}
	if len(got) != len(want) {
		t.Fatalf("params %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("param %s = %q, want %q", k, got[k], v)
		}
	}
	if v, _ := act.Annotations.Get(whisk.AnnBinding); string(v) != `"guest/mydemo"` {
		t.Errorf("binding annotation %s", v)
	}
	if b.caller.Namespace != "guest" || len(r.inv.reqs) != 0 {
		t.Errorf("caller %+v, %d container invocations", b.caller, len(r.inv.reqs))
	}
	// The result-only form answers the built-in's result.
	res = r.do(t, "POST", "/api/v1/namespaces/_/actions/mydemo/ok?blocking=true&result=true", `{}`, asGuest)
	if res.status != 200 || res.json(t)["q"] != "binding" {
		t.Fatalf("result only: %d %s", res.status, res.body)
	}
}
