package api

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/catalog"
	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/events"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// newEventsRig is newRig with triggers and rules served (events over the
// rig's SQLite store, fires through the fake invoker) and the given
// fires-per-minute limit; now is the clock of the fire throttle.
func newEventsRig(t *testing.T, firesPerMinute int, now func() time.Time) *rig {
	t.Helper()
	r := newRig(t)
	r.srv.Close()
	limits := r.limits
	limits.FiresPerMinute = firesPerMinute
	actions := events.CatalogActions{Catalog: catalog.New(r.store)}
	svc := events.NewService(r.store, actions)
	firer := events.NewFirer(limits, events.FirerDeps{Triggers: svc, Records: r.store, Actions: actions, Invoker: r.inv, Now: now})
	h := newHandler(t, Config{Build: "test", BuildNo: "1", Limits: limits}, Deps{
		Store: r.store, Invoker: r.inv, Runtimes: manifest.Default(), Topics: r.bus, Events: svc, Firer: firer,
	})
	r.srv = httptest.NewServer(h)
	t.Cleanup(r.srv.Close)
	return r
}

func TestTriggerCRUD(t *testing.T) {
	r := newEventsRig(t, 60, nil)
	const base = "/api/v1/namespaces/_/triggers/"
	// wsk's create body: name, annotations, parameters.
	got := r.do(t, "PUT", base+"t1?overwrite=false", `{"name":"t1","annotations":[{"key":"x","value":"y"}],"parameters":[{"key":"a","value":"b"}]}`, asGuest)
	if got.status != 200 {
		t.Fatalf("create: %d %s", got.status, got.body)
	}
	m := got.json(t)
	if m["namespace"] != "guest" || m["name"] != "t1" || m["version"] != "0.0.1" || m["publish"] != false || m["rules"] != nil {
		t.Fatalf("created trigger %s", got.body)
	}
	if l, ok := m["limits"].(map[string]any); !ok || len(l) != 0 {
		t.Fatalf("limits = %v", m["limits"])
	}
	wantError(t, r.do(t, "PUT", base+"t1", `{}`, asGuest), 409, whisk.MsgExists)
	wantError(t, r.do(t, "PUT", base+"t2", `{"annotations":[{"key":"feed","value":"/a//b"}]}`, asGuest), 400, whisk.MsgFeedNotValid)
	wantError(t, r.do(t, "PUT", base+"t2", `{"annotations":[{"key":"feed","value":7}]}`, asGuest), 400, whisk.MsgFeedNotValid)
	if got := r.do(t, "PUT", base+"ft", `{"annotations":[{"key":"feed","value":"/whisk.system/alarms/alarm"}]}`, asGuest); got.status != 200 {
		t.Fatalf("feed trigger: %d %s", got.status, got.body)
	}
	wantError(t, r.do(t, "PUT", base+"a%20b%24", `{}`, asGuest), 400, whisk.MsgBadEntityName)

	// A rule on t1, then an update of t1: parameters replaced, annotations
	// kept when not sent, version bumped, rules kept.
	r.do(t, "PUT", "/api/v1/namespaces/_/actions/hello", helloPut, asGuest)
	if got := r.do(t, "PUT", "/api/v1/namespaces/_/rules/r1", `{"trigger":"/_/t1","action":"/_/hello"}`, asGuest); got.status != 200 {
		t.Fatalf("rule: %d %s", got.status, got.body)
	}
	got = r.do(t, "PUT", base+"t1?overwrite=true", `{"name":"t1","parameters":[{"key":"c","value":"d"}]}`, asGuest)
	var tr whisk.Trigger
	if err := json.Unmarshal(got.body, &tr); err != nil || got.status != 200 {
		t.Fatalf("update: %d %s", got.status, got.body)
	}
	if tr.Version != "0.0.2" || len(tr.Parameters) != 1 || tr.Parameters[0].Key != "c" || len(tr.Annotations) != 1 || tr.Rules["guest/r1"].Status != "active" {
		t.Fatalf("updated trigger %+v", tr)
	}

	// The one name space: a rule's name is not a trigger's.
	wantError(t, r.do(t, "PUT", base+"r1", `{}`, asGuest), 409, whisk.MsgWrongCollection)
	wantError(t, r.do(t, "GET", base+"r1", "", asGuest), 409, whisk.MsgWrongCollection)

	// List: summaries without parameters; count.
	got = r.do(t, "GET", "/api/v1/namespaces/_/triggers?limit=30&skip=0", "", asGuest)
	var list []map[string]any
	if err := json.Unmarshal(got.body, &list); err != nil || len(list) != 2 {
		t.Fatalf("list: %s", got.body)
	}
	for _, it := range list {
		if _, ok := it["parameters"]; ok {
			t.Fatalf("list item has parameters: %v", it)
		}
	}
	if got := r.do(t, "GET", "/api/v1/namespaces/_/triggers?count=true", "", asGuest); string(got.body) != `{"triggers":2}` {
		t.Fatalf("count: %s", got.body)
	}
	// Other namespaces' triggers are not ours.
	wantError(t, r.do(t, "GET", "/api/v1/namespaces/guest/triggers/t1", "", "other"), 403, "...")

	// Delete returns the trigger with its rules; then it is gone.
	got = r.do(t, "DELETE", base+"t1", "", asGuest)
	if got.status != 200 || !strings.Contains(string(got.body), `"guest/r1"`) {
		t.Fatalf("delete: %d %s", got.status, got.body)
	}
	wantError(t, r.do(t, "GET", base+"t1", "", asGuest), 404, whisk.MsgNotFound)
	wantError(t, r.do(t, "POST", base+"t1", "", asGuest), 404, whisk.MsgNotFound)
}

func TestFire(t *testing.T) {
	r := newEventsRig(t, 60, nil)
	ctx := context.Background()
	r.do(t, "PUT", "/api/v1/namespaces/_/actions/hello", helloPut, asGuest)
	r.do(t, "PUT", "/api/v1/namespaces/_/actions/hello2", strings.Replace(helloPut, `"hello"`, `"hello2"`, 1), asGuest)
	r.do(t, "PUT", "/api/v1/namespaces/_/triggers/t", `{"parameters":[{"key":"p","value":1},{"key":"k","value":"param"}]}`, asGuest)
	fire := func(body string) resp { return r.do(t, "POST", "/api/v1/namespaces/_/triggers/t", body, asGuest) }

	if got := fire(`{"k":"v"}`); got.status != 204 || len(got.body) != 0 {
		t.Fatalf("fire without rules: %d %q", got.status, got.body)
	}
	if n := len(r.inv.reqs); n != 0 {
		t.Fatalf("%d invocations without rules", n)
	}
	for _, rule := range []string{`"r1","trigger":"/_/t","action":"/_/hello"`, `"r2","trigger":"/_/t","action":"/_/hello2"`} {
		name := strings.Trim(strings.SplitN(rule, ",", 2)[0], `"`)
		if got := r.do(t, "PUT", "/api/v1/namespaces/_/rules/"+name, `{"name":`+rule+`}`, asGuest); got.status != 200 {
			t.Fatalf("rule %s: %d %s", name, got.status, got.body)
		}
	}
	r.do(t, "POST", "/api/v1/namespaces/_/rules/r2", `{"status":"inactive"}`, asGuest)

	got := fire(`{"k":"v"}`)
	if got.status != 202 {
		t.Fatalf("fire: %d %s", got.status, got.body)
	}
	id := whisk.ActivationID(got.json(t)["activationId"].(string))
	if got.hdr.Get("X-Openwhisk-Activation-Id") != string(id) {
		t.Fatalf("header %q, body id %q", got.hdr.Get("X-Openwhisk-Activation-Id"), id)
	}
	// One invocation: r1's, as the caller, with the merged arguments.
	if n := len(r.inv.reqs); n != 1 {
		t.Fatalf("%d invocations, want 1", n)
	}
	req := r.inv.last()
	var args map[string]any
	if err := json.Unmarshal(req.Params, &args); err != nil {
		t.Fatal(err)
	}
	hdrs, _ := args["__ow_headers"].(map[string]any)
	if req.Identity.Namespace != "guest" || req.Action.Name != "hello" || req.Blocking ||
		args["p"] != 1.0 || args["k"] != "v" || hdrs["content-type"] != "application/json" || hdrs["authorization"] != nil {
		t.Fatalf("invocation %+v args %v", req, args)
	}
	rec, err := r.store.GetActivation(ctx, "guest", id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Name != "t" || rec.End != 0 || len(rec.Annotations) != 0 || string(rec.Response.Result) != `{"k":"v"}` || len(rec.Logs) != 2 {
		t.Fatalf("trigger record %+v", rec)
	}
	var l1, l2 map[string]any
	_ = json.Unmarshal([]byte(rec.Logs[0]), &l1)
	_ = json.Unmarshal([]byte(rec.Logs[1]), &l2)
	if l1["rule"] != "guest/r1" || l1["success"] != true || l1["statusCode"] != 0.0 || l1["action"] != "guest/hello" || l1["activationId"] == nil {
		t.Fatalf("active rule log %v", l1)
	}
	if l2["error"] != "Rule 'guest/r2' is inactive, action 'guest/hello2' was not activated." || l2["statusCode"] != 1.0 || l2["success"] != false {
		t.Fatalf("inactive rule log %v", l2)
	}
	// The API view has no end or duration.
	got = r.do(t, "GET", "/api/v1/namespaces/_/activations/"+string(id), "", asGuest)
	if m := got.json(t); m["end"] != nil || m["duration"] != nil || m["logs"] == nil {
		t.Fatalf("record view %s", got.body)
	}

	// Refused invocations: 4xx → statusCode 1 with the message, 5xx → 3.
	r.inv.set(func(controller.Request) (controller.Result, error) {
		return controller.Result{}, whisk.ThrottledError("test", &whisk.Throttle{Limit: whisk.LimitInvocationsPerMinute, Count: 9, Allowed: 8})
	})
	id = whisk.ActivationID(fire(``).json(t)["activationId"].(string))
	rec, _ = r.store.GetActivation(ctx, "guest", id)
	_ = json.Unmarshal([]byte(rec.Logs[0]), &l1)
	if l1["statusCode"] != 1.0 || l1["error"] != whisk.MsgTooManyPerMinute(9, 8) || string(rec.Response.Result) != `{}` {
		t.Fatalf("throttled rule log %v, result %s", l1, rec.Response.Result)
	}
	r.inv.set(func(controller.Request) (controller.Result, error) {
		return controller.Result{}, whisk.E("test", whisk.Unavailable, "", context.DeadlineExceeded)
	})
	id = whisk.ActivationID(fire(``).json(t)["activationId"].(string))
	rec, _ = r.store.GetActivation(ctx, "guest", id)
	_ = json.Unmarshal([]byte(rec.Logs[0]), &l1)
	if l1["statusCode"] != 3.0 || l1["success"] != false || l1["error"] == "" {
		t.Fatalf("unavailable rule log %v", l1)
	}
	r.inv.set(nil)

	// Bad bodies.
	wantError(t, fire(`[1]`), 400, whisk.MsgMalformed+"...")
	wantError(t, fire(`{"x":"`+strings.Repeat("a", int(r.limits.MaxPayload))+`"}`), 413, "Request larger than allowed: ...")
}

func TestFireThrottle(t *testing.T) {
	now := time.Date(2026, 1, 1, 10, 0, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	r := newEventsRig(t, 3, clock)
	r.do(t, "PUT", "/api/v1/namespaces/_/triggers/t", `{}`, asGuest)
	for i := 0; i < 3; i++ {
		if got := r.do(t, "POST", "/api/v1/namespaces/_/triggers/t", "", asGuest); got.status != 204 {
			t.Fatalf("fire %d: %d %s", i, got.status, got.body)
		}
	}
	got := r.do(t, "POST", "/api/v1/namespaces/_/triggers/t", "", asGuest)
	if got.status != 429 || got.json(t)["error"] != "Too many requests in the last minute (count: 4, allowed: 3)." ||
		got.json(t)["limit"] != whisk.LimitFiresPerMinute || got.hdr.Get("Retry-After") != "55" {
		t.Fatalf("4th fire: %d %v %s", got.status, got.hdr, got.body)
	}
	// A namespace limit overrides the default.
	if err := r.store.PutNamespaceLimits(context.Background(), "other", whisk.NamespaceLimits{FiresPerMinute: 1}); err != nil {
		t.Fatal(err)
	}
	r.do(t, "PUT", "/api/v1/namespaces/_/triggers/o", `{}`, "other")
	if got := r.do(t, "POST", "/api/v1/namespaces/_/triggers/o", "", "other"); got.status != 204 {
		t.Fatalf("other's first fire: %d %s", got.status, got.body)
	}
	if got := r.do(t, "POST", "/api/v1/namespaces/_/triggers/o", "", "other"); got.status != 429 {
		t.Fatalf("other's second fire: %d %s", got.status, got.body)
	}
	// The next minute admits again.
	now = now.Add(time.Minute)
	if got := r.do(t, "POST", "/api/v1/namespaces/_/triggers/t", "", asGuest); got.status != 204 {
		t.Fatalf("next minute: %d %s", got.status, got.body)
	}
}

func TestRules(t *testing.T) {
	r := newEventsRig(t, 60, nil)
	const rules = "/api/v1/namespaces/_/rules/"
	r.do(t, "PUT", "/api/v1/namespaces/_/actions/hello", helloPut, asGuest)
	r.do(t, "PUT", "/api/v1/namespaces/_/triggers/t1", `{}`, asGuest)
	r.do(t, "PUT", "/api/v1/namespaces/_/triggers/t2", `{}`, asGuest)

	wantError(t, r.do(t, "PUT", rules+"r", `{"trigger":"/_/t1"}`, asGuest), 400, whisk.MsgRuleNeedsBoth)
	wantError(t, r.do(t, "PUT", rules+"r", `{"trigger":"/_/nope","action":"/_/hello"}`, asGuest), 400, "trigger /guest/nope does not exist")
	wantError(t, r.do(t, "PUT", rules+"r", `{"trigger":"/_/t1","action":"/_/nope"}`, asGuest), 400, "action /guest/nope does not exist")
	wantError(t, r.do(t, "PUT", rules+"r", `{"trigger":"t1","action":"/_/hello"}`, asGuest), 400,
		whisk.MsgMalformed+"requirement failed: "+whisk.MsgFQNMalformed)
	wantError(t, r.do(t, "PUT", rules+"r", `{"trigger":"/other/t","action":"/_/hello"}`, asGuest), 403,
		"The supplied authentication is not authorized to access 'other/t'.")
	wantError(t, r.do(t, "PUT", rules+"r", `{"trigger":"/_/t1","action":"/other/a"}`, asGuest), 403, "...")

	got := r.do(t, "PUT", rules+"r?overwrite=false", `{"name":"r","status":"","trigger":"/_/t1","action":"/_/hello"}`, asGuest)
	if got.status != 200 {
		t.Fatalf("create: %d %s", got.status, got.body)
	}
	m := got.json(t)
	if m["status"] != "active" || m["version"] != "0.0.1" {
		t.Fatalf("created %s", got.body)
	}
	if ref, _ := m["trigger"].(map[string]any); ref["path"] != "guest" || ref["name"] != "t1" {
		t.Fatalf("trigger ref %v", m["trigger"])
	}

	// Disable, then move to t2: status kept, entry moved.
	if got := r.do(t, "POST", rules+"r", `{"status":"inactive","trigger":null,"action":null}`, asGuest); got.status != 200 || string(got.body) != "OK" {
		t.Fatalf("disable: %d %q", got.status, got.body)
	}
	if got := r.do(t, "POST", rules+"r", `{"status":"inactive"}`, asGuest); got.status != 200 {
		t.Fatalf("disable again: %d %q", got.status, got.body)
	}
	wantError(t, r.do(t, "POST", rules+"r", `{"status":"xxx"}`, asGuest), 400, whisk.MsgMalformed+"...")
	got = r.do(t, "PUT", rules+"r?overwrite=true", `{"name":"r","status":"","trigger":"/_/t2","action":"/_/hello"}`, asGuest)
	if got.status != 200 || got.json(t)["status"] != "inactive" || got.json(t)["version"] != "0.0.2" {
		t.Fatalf("update: %d %s", got.status, got.body)
	}
	var t1, t2 whisk.Trigger
	_ = json.Unmarshal(r.do(t, "GET", "/api/v1/namespaces/_/triggers/t1", "", asGuest).body, &t1)
	_ = json.Unmarshal(r.do(t, "GET", "/api/v1/namespaces/_/triggers/t2", "", asGuest).body, &t2)
	if len(t1.Rules) != 0 || t2.Rules["guest/r"].Status != "inactive" {
		t.Fatalf("after the move: t1 %v, t2 %v", t1.Rules, t2.Rules)
	}

	// List: no status; get: status.
	got = r.do(t, "GET", "/api/v1/namespaces/_/rules", "", asGuest)
	if got.status != 200 || strings.Contains(string(got.body), "status") || !strings.Contains(string(got.body), `"name":"r"`) {
		t.Fatalf("list: %s", got.body)
	}
	if got := r.do(t, "GET", "/api/v1/namespaces/_/rules?count=true", "", asGuest); string(got.body) != `{"rules":1}` {
		t.Fatalf("count: %s", got.body)
	}

	// Delete in any state: enable first, then delete (entry removed).
	if got := r.do(t, "POST", rules+"r", `{"status":"active"}`, asGuest); got.status != 200 {
		t.Fatalf("enable: %d %s", got.status, got.body)
	}
	got = r.do(t, "DELETE", rules+"r", "", asGuest)
	if got.status != 200 || got.json(t)["status"] != "inactive" {
		t.Fatalf("delete: %d %s", got.status, got.body)
	}
	var t2after whisk.Trigger // a fresh value: Unmarshal would merge into t2's map
	_ = json.Unmarshal(r.do(t, "GET", "/api/v1/namespaces/_/triggers/t2", "", asGuest).body, &t2after)
	if len(t2after.Rules) != 0 {
		t.Fatalf("t2 keeps %v", t2after.Rules)
	}
	wantError(t, r.do(t, "GET", rules+"r", "", asGuest), 404, whisk.MsgNotFound)
	if got.hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("content type %q", got.hdr.Get("Content-Type"))
	}
}

// TestRulePackageTargets: a rule may target an action of a shared package
// of another namespace and of the caller's binding (resolved again at
// every fire, with package < binding < action parameters), not a private
// one; fires of a rule whose package was unshared log the 403.
func TestRulePackageTargets(t *testing.T) {
	r := newEventsRig(t, 60, nil)
	ctx := context.Background()
	put := func(p whisk.Package) {
		t.Helper()
		e, err := p.Entity()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.store.PutEntity(ctx, e, 0); err != nil {
			t.Fatal(err)
		}
	}
	put(whisk.Package{Namespace: "other", Name: "shared", Publish: true, Version: "0.0.1", Parameters: whisk.Params{{Key: "p", Value: json.RawMessage(`"pkg"`)}}})
	put(whisk.Package{Namespace: "other", Name: "private", Version: "0.0.1"})
	put(whisk.Package{Namespace: "guest", Name: "b", Version: "0.0.1", Binding: whisk.Binding{Namespace: "other", Name: "shared"},
		Parameters: whisk.Params{{Key: "b", Value: json.RawMessage(`"binding"`)}}})
	for _, n := range []string{"shared/echo", "private/x"} {
		a := whisk.Action{Namespace: "other", Name: n, Version: "0.0.1", Exec: whisk.Exec{Kind: "python:3.11", Code: "x"},
			Limits: r.limits.Defaults()}
		if _, err := r.store.PutAction(ctx, a, 0); err != nil {
			t.Fatal(err)
		}
	}
	r.do(t, "PUT", "/api/v1/namespaces/_/triggers/t", `{}`, asGuest)
	if got := r.do(t, "PUT", "/api/v1/namespaces/_/rules/shared", `{"trigger":"/_/t","action":"/other/shared/echo"}`, asGuest); got.status != 200 {
		t.Fatalf("rule on a shared package: %d %s", got.status, got.body)
	}
	if got := r.do(t, "PUT", "/api/v1/namespaces/_/rules/bound", `{"trigger":"/_/t","action":"/_/b/echo"}`, asGuest); got.status != 200 {
		t.Fatalf("rule on a binding: %d %s", got.status, got.body)
	}
	wantError(t, r.do(t, "PUT", "/api/v1/namespaces/_/rules/priv", `{"trigger":"/_/t","action":"/other/private/x"}`, asGuest), 403,
		whisk.MsgNotAuthorized("other/private"))
	wantError(t, r.do(t, "PUT", "/api/v1/namespaces/_/rules/priv", `{"trigger":"/_/t","action":"/other/shared/nope"}`, asGuest), 400,
		"action /other/shared/nope does not exist")

	got := r.do(t, "POST", "/api/v1/namespaces/_/triggers/t", `{}`, asGuest)
	if got.status != 202 || len(r.inv.reqs) != 2 {
		t.Fatalf("fire: %d %s, %d invocations", got.status, got.body, len(r.inv.reqs))
	}
	byBinding := map[string]controller.Request{}
	for _, q := range r.inv.reqs {
		byBinding[q.Binding] = q
	}
	if q := byBinding["guest/b"]; q.Action.Name != "shared/echo" || q.Action.Namespace != "other" || len(q.Action.Parameters) != 2 {
		t.Fatalf("binding invocation %+v", q)
	}
	if q := byBinding[""]; q.Action.Name != "shared/echo" || len(q.Action.Parameters) != 1 {
		t.Fatalf("shared invocation %+v", q)
	}

	// Unshare the package: the next fire logs the refusal (resolved at fire time).
	e, _ := r.store.GetEntity(ctx, whisk.EntityPackage, "other", "shared")
	var p whisk.Package
	_ = json.Unmarshal(e.Doc, &p)
	p.Publish = false
	ne, _ := p.Entity()
	if _, err := r.store.PutEntity(ctx, ne, e.Rev); err != nil {
		t.Fatal(err)
	}
	id := whisk.ActivationID(r.do(t, "POST", "/api/v1/namespaces/_/triggers/t", `{}`, asGuest).json(t)["activationId"].(string))
	rec, err := r.store.GetActivation(ctx, "guest", id)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range rec.Logs {
		var m map[string]any
		_ = json.Unmarshal([]byte(l), &m)
		if m["statusCode"] != 1.0 || !strings.Contains(m["error"].(string), "not authorized") {
			t.Fatalf("log after unsharing: %s", l)
		}
	}
}
