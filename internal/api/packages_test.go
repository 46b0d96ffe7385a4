package api

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/store/cached"
	"github.com/eddy-faas/eddy/internal/whisk"
)

const pkgs = "/api/v1/namespaces/_/packages/"
const acts = "/api/v1/namespaces/_/actions/"

// ok does a request that must answer 200 and decodes the body into out.
func (r *rig) ok(t *testing.T, method, path, body, who string, out any) {
	t.Helper()
	res := r.do(t, method, path, body, who)
	if res.status != 200 {
		t.Fatalf("%s %s: %d %s", method, path, res.status, res.body)
	}
	if out != nil {
		if err := json.Unmarshal(res.body, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, res.body)
		}
	}
}

func paramsJSON(p whisk.Params) string {
	b, _ := json.Marshal(p)
	return string(b)
}

// TestPackageLifecycle follows the wsk session of the reference §1.7:
// create, update (parameters replace), packaged actions, get with actions
// and feeds, lists, a binding with merged parameters, invoke through it,
// and deletes (409 while not empty, force).
func TestPackageLifecycle(t *testing.T) {
	r := newRig(t)
	var p whisk.PackageWithActions
	r.ok(t, "PUT", pkgs+"p1?overwrite=false", `{"namespace":"_","name":"p1","publish":true,"annotations":[{"key":"desc","value":"x"}],"parameters":[{"key":"a","value":"b"}]}`, asGuest, &p)
	if p.Namespace != "guest" || p.Name != "p1" || p.IsBinding() || !p.Publish || p.Version != "0.0.1" ||
		paramsJSON(p.Parameters) != `[{"key":"a","value":"b"}]` || paramsJSON(p.Annotations) != `[{"key":"desc","value":"x"}]` {
		t.Fatalf("created %+v", p)
	}
	if res := r.do(t, "PUT", pkgs+"p1", `{}`, asGuest); !strings.Contains(string(res.body), `"binding":{}`) && res.status == 200 {
		t.Fatalf("binding not shown as {}: %s", res.body)
	}
	wantError(t, r.do(t, "PUT", pkgs+"p1?overwrite=false", `{}`, asGuest), 409, whisk.MsgExists)
	r.ok(t, "PUT", pkgs+"p1?overwrite=true", `{"namespace":"_","name":"p1","parameters":[{"key":"c","value":"d"}]}`, asGuest, &p)
	if paramsJSON(p.Parameters) != `[{"key":"c","value":"d"}]` || paramsJSON(p.Annotations) != `[{"key":"desc","value":"x"}]` ||
		!p.Publish || p.Version != "0.0.2" {
		t.Fatalf("updated %+v", p)
	}

	var a whisk.Action
	r.ok(t, "PUT", acts+"p1/a1", helloPut, asGuest, &a)
	if a.Namespace != "guest/p1" || a.Name != "a1" {
		t.Fatalf("packaged action shown as %s / %s", a.Namespace, a.Name)
	}
	r.ok(t, "PUT", acts+"p1/feed1", `{"exec":{"kind":"python:3.11","code":"x"},"annotations":[{"key":"feed","value":true}]}`, asGuest, nil)
	r.ok(t, "GET", pkgs+"p1", "", asGuest, &p)
	if len(p.Actions) != 1 || p.Actions[0].Name != "a1" || len(p.Feeds) != 1 || p.Feeds[0].Name != "feed1" {
		t.Fatalf("get: actions %+v feeds %+v", p.Actions, p.Feeds)
	}
	a = whisk.Action{}
	r.ok(t, "GET", acts+"p1/a1?code=false", "", asGuest, &a)
	if a.Namespace != "guest/p1" || paramsJSON(a.Parameters) != `[{"key":"c","value":"d"}]` || a.Exec.Code != "" {
		t.Fatalf("get packaged action: %+v", a)
	}
	var list []map[string]any
	r.ok(t, "GET", "/api/v1/namespaces/_/actions", "", asGuest, &list)
	if len(list) != 2 || list[0]["namespace"] != "guest/p1" {
		t.Fatalf("actions list %v", list)
	}
	r.ok(t, "GET", acts+"p1/?limit=1&skip=1", "", asGuest, &list)
	if len(list) != 1 || list[0]["name"] != "feed1" {
		t.Fatalf("package list page %v", list)
	}
	var count map[string]int
	r.ok(t, "GET", acts+"p1/?count=true", "", asGuest, &count)
	if count["actions"] != 2 {
		t.Fatalf("package count %v", count)
	}
	r.ok(t, "GET", "/api/v1/namespaces/_/packages", "", asGuest, &list)
	if len(list) != 1 || list[0]["binding"] != false || list[0]["name"] != "p1" {
		t.Fatalf("packages list %v", list)
	}
	wantError(t, r.do(t, "DELETE", pkgs+"p1", "", asGuest), 409, whisk.MsgPackageNotEmpty(2))
	r.ok(t, "DELETE", acts+"p1/feed1", "", asGuest, nil)
	wantError(t, r.do(t, "DELETE", pkgs+"p1", "", asGuest), 409,
		"Package not empty (contains 1 entity). Set force param or delete package contents.")

	// A binding with its own parameters over the package's.
	r.ok(t, "PUT", pkgs+"b1", `{"binding":{"namespace":"_","name":"p1"},"parameters":[{"key":"e","value":"f"}],"annotations":[{"key":"binding","value":"forged"}]}`, asGuest, &p)
	if p.Binding.String() != "guest/p1" || paramsJSON(p.Annotations) != `[{"key":"binding","value":{"namespace":"guest","name":"p1"}}]` {
		t.Fatalf("binding %+v", p)
	}
	r.ok(t, "GET", pkgs+"b1", "", asGuest, &p)
	if p.Name != "b1" || paramsJSON(p.Parameters) != `[{"key":"c","value":"d"},{"key":"e","value":"f"}]` ||
		len(p.Actions) != 1 || p.Actions[0].Name != "a1" {
		t.Fatalf("get binding %+v", p)
	}
	// An update without binding keeps it a binding.
	r.ok(t, "PUT", pkgs+"b1?overwrite=true", `{"parameters":[{"key":"c","value":"bound"}]}`, asGuest, &p)
	if p.Binding.String() != "guest/p1" {
		t.Fatalf("update lost the binding: %+v", p)
	}
	var viaBinding map[string]any
	r.ok(t, "GET", acts+"b1/a1?code=false", "", asGuest, &viaBinding)
	if viaBinding["binding"] != "guest/b1" || viaBinding["namespace"] != "guest/p1" || viaBinding["name"] != "a1" {
		t.Fatalf("action through binding %v", viaBinding)
	}
	viaBinding = nil
	r.ok(t, "GET", acts+"b1/a1", "", asGuest, &viaBinding)
	if _, ok := viaBinding["binding"]; ok {
		t.Fatalf("code=true shows the binding: %v", viaBinding)
	}
	r.ok(t, "GET", acts+"b1/", "", asGuest, &list)
	if len(list) != 1 || list[0]["namespace"] != "guest/p1" {
		t.Fatalf("binding's actions %v", list)
	}
	wantError(t, r.do(t, "PUT", acts+"b1/x", helloPut, asGuest), 400, whisk.MsgNotAllowedOnBinding)
	wantError(t, r.do(t, "DELETE", acts+"b1/a1", "", asGuest), 400, whisk.MsgNotAllowedOnBinding)

	res := r.do(t, "POST", acts+"b1/a1", `{"x":1}`, asGuest)
	if res.status != 202 {
		t.Fatalf("invoke through binding: %d %s", res.status, res.body)
	}
	req := r.inv.last()
	if req.Action.Namespace != "guest" || req.Action.Name != "p1/a1" || req.Binding != "guest/b1" ||
		paramsJSON(req.Action.Parameters) != `[{"key":"c","value":"bound"}]` {
		t.Fatalf("invoke request: action %s binding %q params %s", req.Action.FQN(), req.Binding, paramsJSON(req.Action.Parameters))
	}
	if res := r.do(t, "POST", acts+"p1/a1", ``, asGuest); res.status != 202 {
		t.Fatalf("invoke: %d %s", res.status, res.body)
	}
	if req := r.inv.last(); req.Binding != "" || paramsJSON(req.Action.Parameters) != `[{"key":"c","value":"d"}]` {
		t.Fatalf("direct invoke: binding %q params %s", req.Binding, paramsJSON(req.Action.Parameters))
	}

	r.ok(t, "DELETE", pkgs+"b1", "", asGuest, &p)
	if !p.IsBinding() || p.Name != "b1" {
		t.Fatalf("deleted binding %+v", p)
	}
	r.ok(t, "DELETE", pkgs+"p1?force=true", "", asGuest, &p)
	wantError(t, r.do(t, "GET", acts+"p1/a1", "", asGuest), 404, whisk.MsgNotFound)
	wantError(t, r.do(t, "GET", pkgs+"p1", "", asGuest), 404, whisk.MsgResourceMissing("guest/p1"))
	r.ok(t, "GET", "/api/v1/namespaces/_/actions", "", asGuest, &list)
	if len(list) != 0 {
		t.Fatalf("force delete left %v", list)
	}
}

func (r *rig) invokes() int {
	r.inv.mu.Lock()
	defer r.inv.mu.Unlock()
	return len(r.inv.reqs)
}

// TestSharedPackages: another namespace reads, binds to and invokes a
// published package, and nothing else of the owner's.
func TestSharedPackages(t *testing.T) {
	r := newRig(t)
	r.ok(t, "PUT", pkgs+"pub", `{"publish":true,"parameters":[{"key":"k","value":"owner"}]}`, asGuest, nil)
	r.ok(t, "PUT", acts+"pub/echo", helloPut, asGuest, nil)
	r.ok(t, "PUT", pkgs+"priv", `{}`, asGuest, nil)
	r.ok(t, "PUT", acts+"priv/x", helloPut, asGuest, nil)
	r.ok(t, "PUT", pkgs+"gbind", `{"publish":true,"binding":{"namespace":"guest","name":"pub"}}`, asGuest, nil)
	r.ok(t, "PUT", acts+"hello", helloPut, asGuest, nil)

	const g = "/api/v1/namespaces/guest/"
	var list []map[string]any
	r.ok(t, "GET", g+"packages", "", "other", &list)
	if len(list) != 1 || list[0]["name"] != "pub" {
		t.Fatalf("other lists %v", list)
	}
	var count map[string]int
	r.ok(t, "GET", g+"packages?count=true", "", "other", &count)
	if count["packages"] != 1 {
		t.Fatalf("other counts %v", count)
	}
	var p whisk.PackageWithActions
	r.ok(t, "GET", g+"packages/pub", "", "other", &p)
	if len(p.Actions) != 1 {
		t.Fatalf("shared package %+v", p)
	}
	r.ok(t, "GET", g+"actions/pub/", "", "other", &list)
	r.ok(t, "GET", g+"actions/pub/echo", "", "other", nil)
	if res := r.do(t, "POST", g+"actions/pub/echo", `{}`, "other"); res.status != 202 {
		t.Fatalf("shared invoke: %d %s", res.status, res.body)
	}
	if req := r.inv.last(); req.Identity.Namespace != "other" || req.Action.Namespace != "guest" || req.Action.Name != "pub/echo" {
		t.Fatalf("shared invoke: identity %s action %s", req.Identity.Namespace, req.Action.FQN())
	}
	// other binds to it and invokes through its binding.
	r.ok(t, "PUT", pkgs+"mine", `{"binding":{"namespace":"guest","name":"pub"},"parameters":[{"key":"k","value":"mine"}]}`, "other", nil)
	if res := r.do(t, "POST", acts+"mine/echo", `{}`, "other"); res.status != 202 {
		t.Fatalf("invoke through binding: %d %s", res.status, res.body)
	}
	if req := r.inv.last(); req.Binding != "other/mine" || paramsJSON(req.Action.Parameters) != `[{"key":"k","value":"mine"}]` {
		t.Fatalf("invoke through other's binding: %q %s", req.Binding, paramsJSON(req.Action.Parameters))
	}

	n := r.invokes()
	for _, tc := range []struct{ method, path, body, res string }{
		{"GET", g + "packages/priv", "", "guest/priv"},
		{"GET", g + "packages/gbind", "", "guest/gbind"},
		{"GET", g + "packages/nope", "", "guest/nope"},
		{"GET", g + "actions/priv/x", "", "guest/priv"},
		{"GET", g + "actions/gbind/echo", "", "guest/gbind"},
		{"GET", g + "actions/nope/x", "", "guest/nope"},
		{"GET", g + "actions/priv/", "", "guest/priv"},
		{"GET", g + "actions/hello", "", "guest/hello"},
		{"GET", g + "actions", "", "guest"},
		{"POST", g + "actions/priv/x", "{}", "guest/priv"},
		{"POST", g + "actions/hello", "{}", "guest/hello"},
		{"PUT", g + "actions/pub/new", helloPut, "guest/pub/new"},
		{"DELETE", g + "actions/pub/echo", "", "guest/pub/echo"},
		{"PUT", g + "packages/pub?overwrite=true", `{}`, "guest/pub"},
		{"DELETE", g + "packages/pub", "", "guest/pub"},
		{"PUT", pkgs + "b2", `{"binding":{"namespace":"guest","name":"priv"}}`, "guest/priv"},
		{"PUT", pkgs + "b3", `{"binding":{"namespace":"guest","name":"gbind"}}`, "guest/gbind"},
		{"PUT", pkgs + "b4", `{"binding":{"namespace":"guest","name":"nope"}}`, "guest/nope"},
	} {
		wantError(t, r.do(t, tc.method, tc.path, tc.body, "other"), 403, whisk.MsgNotAuthorized(tc.res))
	}
	if r.invokes() != n {
		t.Fatalf("refused invocations reached the invoker")
	}
	// Unpublishing the package cuts other off, its binding included.
	r.ok(t, "PUT", pkgs+"pub?overwrite=true", `{"publish":false}`, asGuest, nil)
	wantError(t, r.do(t, "POST", acts+"mine/echo", `{}`, "other"), 403, whisk.MsgNotAuthorized("other/mine"))
	wantError(t, r.do(t, "GET", pkgs+"mine", "", "other"), 403, whisk.MsgNotAuthorized("other/mine"))
}

// TestPackageErrors: every refusal of the reference's table, and one name
// space per namespace.
func TestPackageErrors(t *testing.T) {
	r := newRig(t)
	r.ok(t, "PUT", pkgs+"p", `{}`, asGuest, nil)
	r.ok(t, "PUT", pkgs+"b", `{"binding":{"namespace":"_","name":"p"}}`, asGuest, nil)
	r.ok(t, "PUT", acts+"hello", helloPut, asGuest, nil)
	r.ok(t, "PUT", pkgs+"priv", `{}`, "other", nil)
	big := `[{"key":"k","value":"` + strings.Repeat("x", 1100) + `"}]`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"reserved", "PUT", pkgs + "default", `{}`, 400, whisk.MsgPackageReserved("default")},
		{"reserved update", "PUT", pkgs + "default?overwrite=true", `{}`, 400, whisk.MsgPackageReserved("default")},
		{"bad name", "PUT", pkgs + "b%20ad!", `{}`, 400, whisk.MsgBadEntityName},
		{"bad json", "PUT", pkgs + "q", `{"binding":`, 400, whisk.MsgMalformed + "..."},
		{"bad version", "PUT", pkgs + "q", `{"version":"1"}`, 400, whisk.MsgMalformed + "..."},
		{"binding to missing", "PUT", pkgs + "q", `{"binding":{"namespace":"_","name":"nope"}}`, 400, whisk.MsgBindingMissing},
		{"binding to binding", "PUT", pkgs + "q", `{"binding":{"namespace":"guest","name":"b"}}`, 400, whisk.MsgBindingToBinding},
		{"binding to action", "PUT", pkgs + "q", `{"binding":{"namespace":"_","name":"hello"}}`, 409, whisk.MsgWrongCollectionBinding},
		{"binding to private", "PUT", pkgs + "q", `{"binding":{"namespace":"other","name":"priv"}}`, 403, whisk.MsgNotAuthorized("other/priv")},
		{"binding over package", "PUT", pkgs + "p?overwrite=true", `{"binding":{"namespace":"_","name":"p"}}`, 409, whisk.MsgPackageCannotBeBinding},
		{"binding over package to a binding", "PUT", pkgs + "p?overwrite=true", `{"binding":{"namespace":"_","name":"b"}}`, 409, whisk.MsgPackageCannotBeBinding},
		{"binding exists", "PUT", pkgs + "b", `{"binding":{"namespace":"_","name":"p"}}`, 409, whisk.MsgExists},
		{"rebind to a binding", "PUT", pkgs + "b?overwrite=true", `{"binding":{"namespace":"_","name":"b"}}`, 400, whisk.MsgBindingToBinding},
		{"package into binding", "PUT", pkgs + "p?overwrite=true", `{"binding":{"namespace":"other","name":"priv"}}`, 403, whisk.MsgNotAuthorized("other/priv")},
		{"big parameters", "PUT", pkgs + "q", `{"parameters":` + big + `}`, 413, whisk.MsgFieldTooLarge("parameters", 1103, 1024)},
		{"big annotations", "PUT", pkgs + "q", `{"annotations":` + big + `}`, 413, whisk.MsgFieldTooLarge("annotations", 1103, 1024)},
		{"package named like an action", "PUT", pkgs + "hello", `{}`, 409, whisk.MsgWrongCollection},
		{"get action as package", "GET", pkgs + "hello", ``, 409, whisk.MsgWrongCollection},
		{"delete action as package", "DELETE", pkgs + "hello", ``, 409, whisk.MsgWrongCollection},
		{"action named like a package", "PUT", acts + "p", helloPut, 409, whisk.MsgWrongCollection},
		{"get package as action", "GET", acts + "p", ``, 409, whisk.MsgWrongCollection},
		{"invoke package", "POST", acts + "p", `{}`, 409, whisk.MsgWrongCollection},
		{"action in missing package", "PUT", acts + "nope/a", helloPut, 404, whisk.MsgNotFound},
		{"invoke in missing package", "POST", acts + "nope/a", `{}`, 404, whisk.MsgNotFound},
		{"missing packaged action", "POST", acts + "p/nope", `{}`, 404, whisk.MsgNotFound},
		{"action in an action", "PUT", acts + "hello/a", helloPut, 409, whisk.MsgWrongCollection},
		{"three segments", "GET", acts + "p/a/b", ``, 404, whisk.MsgNotFound},
		{"get missing package", "GET", pkgs + "nope", ``, 404, whisk.MsgResourceMissing("guest/nope")},
		{"delete missing package", "DELETE", pkgs + "nope", ``, 404, whisk.MsgNotFound},
		{"no POST on packages", "POST", pkgs + "p", `{}`, 405, whisk.MsgMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, r.do(t, tc.method, tc.path, tc.body, asGuest), tc.status, tc.msg)
		})
	}
	// Nothing was written by the refusals.
	var list []map[string]any
	r.ok(t, "GET", "/api/v1/namespaces/_/packages", "", asGuest, &list)
	if len(list) != 2 {
		t.Fatalf("packages after refusals: %v", list)
	}
	var p whisk.Package
	r.ok(t, "GET", pkgs+"p", "", asGuest, &p)
	if p.IsBinding() || p.Version != "0.0.1" {
		t.Fatalf("p changed: %+v", p)
	}
}

// TestPackagedInvokeReadsCached: invoking a packaged action through a
// binding reads the binding, its target and the action from the cached
// store; once they are cached (the clock stands still, so nothing
// expires), more invocations add cache hits and no store reads.
func TestPackagedInvokeReadsCached(t *testing.T) {
	base := newRig(t)
	base.ok(t, "PUT", pkgs+"p", `{"parameters":[{"key":"a","value":1}]}`, asGuest, nil)
	base.ok(t, "PUT", acts+"p/a", helloPut, asGuest, nil)
	base.ok(t, "PUT", pkgs+"b", `{"binding":{"namespace":"_","name":"p"}}`, asGuest, nil)

	frozen := time.Unix(1_800_000_000, 0)
	cs := cached.New(base.store.Store, cached.Config{Now: func() time.Time { return frozen }})
	inv := &fakeInvoker{}
	srv := httptest.NewServer(newHandler(t, Config{Limits: base.limits}, Deps{
		Store: cs, Invoker: inv, Runtimes: manifest.Default(), Topics: base.bus,
	}))
	t.Cleanup(srv.Close)
	r := &rig{srv: srv, inv: inv, limits: base.limits}
	invoke := func() {
		t.Helper()
		if res := r.do(t, "POST", acts+"b/a", `{}`, asGuest); res.status != 202 {
			t.Fatalf("invoke: %d %s", res.status, res.body)
		}
	}
	invoke()
	first := cs.Stats()
	const n = 20
	for i := 0; i < n; i++ {
		invoke()
	}
	st := cs.Stats()
	if st.ActionMisses != first.ActionMisses || st.EntityMisses != first.EntityMisses || st.IdentityMisses != first.IdentityMisses {
		t.Errorf("warm invocations read the store: misses %+v after the first, %+v after %d more", first, st, n)
	}
	// Per invocation: the binding and its target (entities), the action.
	if got := st.EntityHits - first.EntityHits; got != 2*n {
		t.Errorf("entity hits %d for %d invocations, want %d", got, n, 2*n)
	}
	if got := st.ActionHits - first.ActionHits; got != n {
		t.Errorf("action hits %d for %d invocations, want %d", got, n, n)
	}
	if req := inv.last(); req.Binding != "guest/b" || paramsJSON(req.Action.Parameters) != `[{"key":"a","value":1}]` {
		t.Errorf("cached invoke request: %q %s", req.Binding, paramsJSON(req.Action.Parameters))
	}
}

// TestNamespaceRoutes: GET /namespaces[/] lists the key's namespace as a
// string array; there is no route for one namespace (reference §8).
func TestNamespaceRoutes(t *testing.T) {
	r := newRig(t)
	for _, p := range []string{"/api/v1/namespaces", "/api/v1/namespaces/"} {
		var nss []string
		r.ok(t, "GET", p, "", "other", &nss)
		if len(nss) != 1 || nss[0] != "other" {
			t.Errorf("GET %s = %v", p, nss)
		}
	}
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		wantError(t, r.do(t, m, "/api/v1/namespaces/guest", "", asGuest), 404, whisk.MsgNotFound)
	}
}
