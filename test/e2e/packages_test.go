package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// envPy returns its arguments and the activation's context as the
// container sees it.
const envPy = `import os
def main(args):
    return {"args": args, "ns": os.environ.get("__OW_NAMESPACE"), "name": os.environ.get("__OW_ACTION_NAME")}
`

// envResult is envPy's result.
type envResult struct {
	Args map[string]any `json:"args"`
	NS   string         `json:"ns"`
	Name string         `json:"name"`
}

// invokeAs invokes blocking with auth and returns the status, the record
// and the decoded result.
func (e *eddy) invokeAs(auth, path string, params any) (int, whisk.Activation, envResult) {
	e.t.Helper()
	code, _, out := e.callAuth(auth, "POST", "/api/v1/namespaces/"+path+"?blocking=true", params)
	var a whisk.Activation
	var r envResult
	if code == 200 {
		if err := json.Unmarshal(out, &a); err != nil {
			e.t.Fatalf("invoke %s: %v in %s", path, err, out)
		}
		if err := json.Unmarshal(a.Response.Result, &r); err != nil {
			e.t.Fatalf("invoke %s: result %s: %v", path, a.Response.Result, err)
		}
	}
	return code, a, r
}

// wantRefusal checks an error answer's status and OpenWhisk's message.
func wantRefusal(t *testing.T, what string, code int, out []byte, status int, msg string) {
	t.Helper()
	var e struct{ Error, Code string }
	_ = json.Unmarshal(out, &e)
	if code != status || e.Error != msg || e.Code == "" {
		t.Errorf("%s: %d %s; want %d %q", what, code, out, status, msg)
	}
}

func annotationOf(a whisk.Activation, key string) string {
	v, _ := a.Annotations.Get(key)
	return string(v)
}

// TestPackages drives the REST API as wsk does, on a real standalone with
// two tenants: a shared package with default parameters, packaged actions,
// bindings with parameter merge (package < binding < action < payload),
// final parameters, records (caller's namespace, bare name, path and
// binding annotations, the name=pkg/a filter), what another tenant may
// and may not do, and the refusals of the reference's table.
func TestPackages(t *testing.T) {
	e := startEddy(t, "process", "")
	alice := e.admin("user", "create", "alice")
	const g = "guest/"

	// guest shares a package of defaults and an action in it.
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/packages/utils?overwrite=false",
		`{"namespace":"_","name":"utils","publish":true,"parameters":[{"key":"greeting","value":"hello"},{"key":"who","value":"pkg"},{"key":"nothing","value":null}]}`)
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/utils/greet",
		map[string]any{"exec": map[string]any{"kind": "python:3.11", "code": envPy},
			"parameters": []map[string]any{{"key": "who", "value": "action"}}})
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/utils/locked",
		map[string]any{"exec": map[string]any{"kind": "python:3.11", "code": envPy},
			"annotations": []map[string]any{{"key": "final", "value": true}}})

	// package < action < payload.
	code, direct, r := e.invokeAs(guestAuth, "_/actions/utils/greet", `{"extra":1}`)
	if code != 200 || r.Args["greeting"] != "hello" || r.Args["who"] != "action" || r.Args["extra"] != 1.0 ||
		r.NS != "guest" || r.Name != "/guest/utils/greet" {
		t.Fatalf("direct invoke: %d %+v", code, r)
	}
	if direct.Namespace != "guest" || direct.Name != "greet" || annotationOf(direct, "path") != `"guest/utils/greet"` ||
		annotationOf(direct, "binding") != "" {
		t.Errorf("direct record: %s/%s annotations %s", direct.Namespace, direct.Name, direct.Annotations)
	}

	// package < binding < action < payload.
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/packages/mybind?overwrite=false",
		`{"binding":{"namespace":"guest","name":"utils"},"parameters":[{"key":"greeting","value":"bound"},{"key":"who","value":"binding"}]}`)
	code, bound, r := e.invokeAs(guestAuth, "_/actions/mybind/greet", nil)
	if code != 200 || r.Args["greeting"] != "bound" || r.Args["who"] != "action" || r.Name != "/guest/utils/greet" {
		t.Fatalf("invoke through binding: %d %+v", code, r)
	}
	if bound.Name != "greet" || annotationOf(bound, "path") != `"guest/utils/greet"` || annotationOf(bound, "binding") != `"guest/mybind"` {
		t.Errorf("binding record: %s annotations %s", bound.Name, bound.Annotations)
	}
	stored := e.activation(string(bound.ActivationID))
	if annotationOf(stored, "binding") != `"guest/mybind"` {
		t.Errorf("stored record annotations %s", stored.Annotations)
	}
	// wsk activation list mybind/greet and utils/greet.
	for name, want := range map[string]whisk.ActivationID{"mybind/greet": bound.ActivationID, "utils/greet": direct.ActivationID} {
		var list []whisk.Activation
		if err := json.Unmarshal(e.mustCall(200, "GET", "/api/v1/namespaces/_/activations?name="+name, nil), &list); err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ActivationID != want {
			t.Errorf("activations named %s: %v, want %s", name, list, want)
		}
	}

	// final: parameters defined after the merge may not be overridden.
	code, _, out := e.call("POST", "/api/v1/namespaces/_/actions/utils/locked?blocking=true", `{"greeting":"x"}`)
	wantRefusal(t, "override of a final package parameter", code, out, 400, whisk.MsgReservedParams)
	if code, _, r = e.invokeAs(guestAuth, "_/actions/utils/locked", `{"nothing":"given","new":1}`); code != 200 || r.Args["new"] != 1.0 || r.Args["nothing"] != "given" {
		t.Errorf("final action with new and null-valued keys: %d %+v", code, r)
	}

	// alice reads and invokes guest's shared package; the activation is hers.
	code, _, out = e.callAuth(alice, "GET", "/api/v1/namespaces/guest/packages", nil)
	if code != 200 || !strings.Contains(string(out), `"name":"utils"`) || strings.Contains(string(out), "mybind") {
		t.Errorf("alice lists guest's packages: %d %s", code, out)
	}
	code, theirs, r := e.invokeAs(alice, "guest/actions/utils/greet", nil)
	if code != 200 || r.NS != "alice" || r.Name != "/guest/utils/greet" || theirs.Namespace != "alice" || theirs.Subject != "alice" {
		t.Fatalf("alice invokes the shared action: %d %+v, record %s/%s", code, r, theirs.Namespace, theirs.Subject)
	}
	// Records are written off the response path: wait for alice's.
	waitTook(t, 30*time.Second, "alice's record in her namespace", func() bool {
		code, _, _ := e.callAuth(alice, "GET", "/api/v1/namespaces/_/activations/"+string(theirs.ActivationID), nil)
		return code == 200
	})
	if code, _, _ := e.call("GET", "/api/v1/namespaces/_/activations/"+string(theirs.ActivationID), nil); code != 404 {
		t.Errorf("guest sees alice's record: %d", code)
	}
	// alice binds to it with her own defaults.
	code, _, out = e.callAuth(alice, "PUT", "/api/v1/namespaces/_/packages/hers", `{"binding":{"namespace":"guest","name":"utils"},"parameters":[{"key":"greeting","value":"alice"}]}`)
	if code != 200 {
		t.Fatalf("alice binds: %d %s", code, out)
	}
	code, viaHers, r := e.invokeAs(alice, "_/actions/hers/greet", nil)
	if code != 200 || r.Args["greeting"] != "alice" || viaHers.Namespace != "alice" || annotationOf(viaHers, "binding") != `"alice/hers"` {
		t.Fatalf("alice through her binding: %d %+v %s", code, r, viaHers.Annotations)
	}

	// What alice may not do.
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/packages/secret", `{}`)
	e.createAction("secret/x", "python:3.11", envPy, nil)
	e.createAction("plain", "python:3.11", envPy, nil)
	for _, tc := range []struct{ method, path, body, res string }{
		{"GET", "guest/packages/secret", "", g + "secret"},
		{"GET", "guest/packages/mybind", "", g + "mybind"},
		{"POST", "guest/actions/secret/x", "{}", g + "secret"},
		{"POST", "guest/actions/mybind/greet", "{}", g + "mybind"},
		{"POST", "guest/actions/plain", "{}", g + "plain"},
		{"GET", "guest/actions/secret/", "", g + "secret"},
		{"PUT", "guest/actions/utils/evil", `{"exec":{"kind":"python:3.11","code":"x"}}`, g + "utils/evil"},
		{"DELETE", "guest/packages/utils", "", g + "utils"},
		{"PUT", "_/packages/b2", `{"binding":{"namespace":"guest","name":"secret"}}`, g + "secret"},
		{"PUT", "_/packages/b3", `{"binding":{"namespace":"guest","name":"nope"}}`, g + "nope"},
	} {
		code, _, out := e.callAuth(alice, tc.method, "/api/v1/namespaces/"+tc.path, tc.body)
		wantRefusal(t, "alice: "+tc.method+" "+tc.path, code, out, 403, whisk.MsgNotAuthorized(tc.res))
	}
	// Unpublished, the package is out of alice's reach, her binding too.
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/packages/utils?overwrite=true", `{"publish":false}`)
	code, _, out = e.callAuth(alice, "POST", "/api/v1/namespaces/_/actions/hers/greet", `{}`)
	wantRefusal(t, "alice after unpublish", code, out, 403, whisk.MsgNotAuthorized("alice/hers"))

	// The refusals of the reference's table, as guest.
	for _, tc := range []struct {
		method, path, body string
		status             int
		msg                string
	}{
		{"PUT", "packages/default", `{}`, 400, whisk.MsgPackageReserved("default")},
		{"PUT", "packages/utils", `{}`, 409, whisk.MsgExists},
		{"PUT", "packages/b4", `{"binding":{"namespace":"_","name":"nope"}}`, 400, whisk.MsgBindingMissing},
		{"PUT", "packages/b4", `{"binding":{"namespace":"_","name":"mybind"}}`, 400, whisk.MsgBindingToBinding},
		{"PUT", "packages/b4", `{"binding":{"namespace":"_","name":"plain"}}`, 409, whisk.MsgWrongCollectionBinding},
		{"PUT", "packages/b4", `{"binding":{"namespace":"alice","name":"hers"}}`, 403, whisk.MsgNotAuthorized("alice/hers")},
		{"PUT", "packages/utils?overwrite=true", `{"binding":{"namespace":"_","name":"secret"}}`, 409, whisk.MsgPackageCannotBeBinding},
		{"PUT", "packages/plain", `{}`, 409, whisk.MsgWrongCollection},
		{"PUT", "actions/utils", `{"exec":{"kind":"python:3.11","code":"x"}}`, 409, whisk.MsgWrongCollection},
		{"PUT", "actions/mybind/x", `{"exec":{"kind":"python:3.11","code":"x"}}`, 400, whisk.MsgNotAllowedOnBinding},
		{"DELETE", "actions/mybind/greet", ``, 400, whisk.MsgNotAllowedOnBinding},
		{"PUT", "actions/nopkg/x", `{"exec":{"kind":"python:3.11","code":"x"}}`, 404, whisk.MsgNotFound},
		{"POST", "actions/nopkg/x", `{}`, 404, whisk.MsgNotFound},
		{"GET", "packages/nope", ``, 404, whisk.MsgResourceMissing("guest/nope")},
		{"DELETE", "packages/utils", ``, 409, whisk.MsgPackageNotEmpty(2)},
		{"PUT", "packages/big", `{"parameters":[{"key":"k","value":"` + strings.Repeat("x", 1<<20) + `"}]}`, 413,
			whisk.MsgFieldTooLarge("parameters", 1<<20+3, 1<<20)},
	} {
		code, _, out := e.call(tc.method, "/api/v1/namespaces/_/"+tc.path, tc.body)
		wantRefusal(t, tc.method+" "+tc.path, code, out, tc.status, tc.msg)
	}

	// Lists: every action of the namespace, a package's, a binding's.
	var list []map[string]any
	_ = json.Unmarshal(e.mustCall(200, "GET", "/api/v1/namespaces/_/actions/mybind/", nil), &list)
	var names []string
	for _, a := range list {
		names = append(names, a["namespace"].(string)+"/"+a["name"].(string))
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"guest/utils/greet", "guest/utils/locked"}) {
		t.Errorf("binding's actions %v", names)
	}
	_ = json.Unmarshal(e.mustCall(200, "GET", "/api/v1/namespaces/_/actions?limit=0", nil), &list)
	if len(list) != 4 {
		t.Errorf("namespace lists %d actions, want 4 (plain and three packaged): %v", len(list), list)
	}

	// force deletes a package with its actions; bindings to it stay.
	e.mustCall(200, "DELETE", "/api/v1/namespaces/_/packages/utils?force=true", nil)
	code, _, out = e.call("POST", "/api/v1/namespaces/_/actions/utils/greet", `{}`)
	wantRefusal(t, "invoke after force delete", code, out, 404, whisk.MsgNotFound)
	code, _, out = e.call("GET", "/api/v1/namespaces/_/packages/mybind", nil)
	wantRefusal(t, "binding to a deleted package", code, out, 404, whisk.MsgResourceMissing("guest/mybind"))
	e.mustCall(200, "DELETE", "/api/v1/namespaces/_/packages/mybind", nil)
}

// TestPackagesCLI is the README's package tour with the eddy CLI against a
// real standalone: create, bind, invoke through the binding with -br,
// the summary, the lists, and a refused delete's exit status.
func TestPackagesCLI(t *testing.T) {
	e := startEddy(t, "process", "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	props := filepath.Join(dir, "wskprops")
	src := filepath.Join(dir, "hello.py")
	code := "def main(args):\n    return {'greeting': args.get('greeting', '?') + ' ' + args.get('name', 'stranger')}\n"
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(wantCode int, args ...string) string {
		t.Helper()
		so, se, code := e.runCLI(ctx, props, args...)
		if code != wantCode {
			t.Fatalf("eddy %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, so, se)
		}
		return so + se
	}
	run(0, "property", "set", "--apihost", e.URL, "--auth", guestAuth)
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"package", "create", "utils", "-p", "greeting", "Hello", "--shared", "yes"}, "ok: created package utils\n"},
		{[]string{"action", "create", "utils/hello", src}, "ok: created action utils/hello\n"},
		{[]string{"package", "bind", "utils", "friendly", "-p", "name", "Ada"}, "ok: created binding friendly\n"},
		{[]string{"action", "invoke", "friendly/hello", "-br"}, "{\n    \"greeting\": \"Hello Ada\"\n}\n"},
		{[]string{"package", "get", "friendly", "--summary"}, "package /guest/friendly: Returns a result based on parameters greeting and name\n" +
			"   (parameters: *greeting, *name)\n action /guest/friendly/hello\n   (parameters: none defined)\n"},
		{[]string{"action", "list", "utils"}, "actions\n/guest/utils/hello" + strings.Repeat(" ", 70-len("/guest/utils/hello")) + " private python:3.11\n"},
		{[]string{"package", "list", "-n"}, "packages\n/guest/friendly" + strings.Repeat(" ", 70-len("/guest/friendly")) + " private\n" +
			"/guest/utils" + strings.Repeat(" ", 70-len("/guest/utils")) + " shared\n"},
	} {
		if out := run(0, step.args...); out != step.want {
			t.Errorf("eddy %s:\n%q\nwant\n%q", strings.Join(step.args, " "), out, step.want)
		}
	}
	if out := run(153, "package", "delete", "utils"); !strings.Contains(out, "Unable to delete package 'utils': "+whisk.MsgPackageNotEmpty(1)) {
		t.Errorf("delete non-empty: %s", out)
	}
	run(0, "package", "delete", "friendly")
	run(0, "action", "delete", "utils/hello")
	run(0, "package", "delete", "utils")
}
