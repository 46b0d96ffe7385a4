package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/whisk"
)

func seqPut(comps ...string) string {
	b, _ := json.Marshal(map[string]any{"namespace": "_", "name": "s",
		"exec":       map[string]any{"kind": "sequence", "components": comps},
		"parameters": []map[string]any{{"key": "dropped", "value": 1}}})
	return string(b)
}

func components(n int, name string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = name
	}
	return out
}

// A sequence as wsk creates it (reference §2.4): '_' resolved, stored with
// a leading slash, parameters forced to _actions, annotations exec and
// provide-api-key; no runtime manifest involved, no topic.
func TestSequenceCreate(t *testing.T) {
	r := newRig(t)
	for _, n := range []string{"a", "b"} {
		if res := r.do(t, http.MethodPut, "/api/v1/namespaces/_/actions/"+n, strings.Replace(helloPut, "hello", n, 1), asGuest); res.status != 200 {
			t.Fatalf("create %s: %d %s", n, res.status, res.body)
		}
	}
	res := r.do(t, http.MethodPut, "/api/v1/namespaces/_/actions/s?overwrite=false", seqPut("/_/a", "guest/b", "/guest/a"), asGuest)
	if res.status != http.StatusOK {
		t.Fatalf("%d %s", res.status, res.body)
	}
	var a whisk.Action
	if err := json.Unmarshal(res.body, &a); err != nil {
		t.Fatal(err)
	}
	want := []string{"/guest/a", "/guest/b", "/guest/a"}
	if a.Exec.Kind != "sequence" || !reflect.DeepEqual(a.Exec.Components, want) || a.Exec.Code != "" {
		t.Fatalf("exec %+v", a.Exec)
	}
	wantParams := whisk.Params{{Key: "_actions", Value: json.RawMessage(`["/guest/a","/guest/b","/guest/a"]`)}}
	if !reflect.DeepEqual(a.Parameters, wantParams) {
		t.Fatalf("parameters %s", mustJSON(a.Parameters))
	}
	if got := string(mustJSON(a.Annotations)); got != `[{"key":"exec","value":"sequence"},{"key":"provide-api-key","value":false}]` {
		t.Fatalf("annotations %s", got)
	}
	if err := r.bus.Publish(t.Context(), whisk.ActionTopic(whisk.FQN{Namespace: "guest", Name: "s"}), []byte("{}")); err == nil {
		t.Fatal("a sequence got a topic")
	}
	// An update without exec keeps the components and discards parameters.
	res = r.do(t, http.MethodPut, "/api/v1/namespaces/_/actions/s?overwrite=true",
		`{"parameters":[{"key":"x","value":2}],"annotations":[{"key":"d","value":"x"}]}`, asGuest)
	if err := json.Unmarshal(res.body, &a); err != nil || res.status != 200 || !reflect.DeepEqual(a.Parameters, wantParams) {
		t.Fatalf("update: %d %s", res.status, res.body)
	}
	// A sequence turned back into an action keeps no _actions.
	res = r.do(t, http.MethodPut, "/api/v1/namespaces/_/actions/s?overwrite=true",
		`{"exec":{"kind":"python:3.11","code":"def main(a):\n  return a"}}`, asGuest)
	if err := json.Unmarshal(res.body, &a); err != nil || res.status != 200 || len(a.Parameters) != 0 || a.Exec.Kind != "python:3.11" {
		t.Fatalf("back to an action: %d %s", res.status, res.body)
	}
}

// Every refusal of reference §2.1, with OpenWhisk's status and message.
func TestSequenceCreateRefused(t *testing.T) {
	r := newRig(t)
	put := func(name, body string) resp {
		return r.do(t, http.MethodPut, "/api/v1/namespaces/_/actions/"+name+"?overwrite=true", body, asGuest)
	}
	if res := put("a", strings.Replace(helloPut, "hello", "a", 1)); res.status != 200 {
		t.Fatal(res.status)
	}
	if res := put("inner", seqPut("/_/a", "/_/a")); res.status != 200 {
		t.Fatalf("inner: %d %s", res.status, res.body)
	}
	if res := put("outer", seqPut("/_/inner")); res.status != 200 {
		t.Fatalf("outer: %d %s", res.status, res.body)
	}
	if res := put("s26", seqPut(components(25, "/_/inner")...)); res.status != 200 { // 50 atomic: allowed
		t.Fatalf("s26: %d %s", res.status, res.body)
	}
	malformed := whisk.MsgMalformed + whisk.MsgComponentNotQualified
	for _, tc := range []struct {
		name, body string
		status     int
		msg        string
	}{
		{"bare", seqPut("a"), 400, malformed},
		{"no components", seqPut(), 400, whisk.MsgSequenceNoComponent},
		{"no components field", `{"exec":{"kind":"sequence"}}`, 400, whisk.MsgSequenceNoComponent},
		{"51 components", seqPut(components(51, "/_/a")...), 400, whisk.MsgSequenceTooLong},
		{"51 after inlining", seqPut(append(components(25, "/_/inner"), "/_/a")...), 400, whisk.MsgSequenceTooLong},
		{"missing", seqPut("/_/a", "/_/nothere"), 400, whisk.MsgSequenceComponentGone},
		{"missing package", seqPut("/_/pkg/a"), 400, whisk.MsgSequenceComponentGone},
		{"other namespace", seqPut("/other/b", "/_/a", "/other/a"), 403, whisk.MsgNotAuthorized("other/a, other/b")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, put("bad", tc.body), tc.status, tc.msg)
			if _, err := r.store.GetAction(t.Context(), "guest", "bad"); !whisk.IsKind(err, whisk.NotFound) {
				t.Fatalf("a refused sequence was stored: %v", err)
			}
		})
	}
	// Recursion: directly, and through a nested sequence (updating inner
	// to call outer, which calls inner).
	wantError(t, put("inner", seqPut("/_/a", "/_/inner")), 400, whisk.MsgSequenceCyclic)
	wantError(t, put("inner", seqPut("/_/outer")), 400, whisk.MsgSequenceCyclic)
	// An action may not become a sequence that calls itself either.
	wantError(t, put("a", seqPut("/_/outer")), 400, whisk.MsgSequenceCyclic)
	// The refused updates left inner as it was.
	got, err := r.store.GetAction(t.Context(), "guest", "inner")
	if err != nil || !reflect.DeepEqual(got.Exec.Components, []string{"/guest/a", "/guest/a"}) {
		t.Fatalf("inner after refused updates: %+v %v", got.Exec, err)
	}
}

// The invoke route hands a sequence to the controller like any action.
func TestSequenceInvokeReachesController(t *testing.T) {
	r := newRig(t)
	r.do(t, http.MethodPut, "/api/v1/namespaces/_/actions/a", strings.Replace(helloPut, "hello", "a", 1), asGuest)
	r.do(t, http.MethodPut, "/api/v1/namespaces/_/actions/s", seqPut("/_/a"), asGuest)
	res := r.do(t, http.MethodPost, "/api/v1/namespaces/_/actions/s?blocking=true", `{"n":1}`, asGuest)
	if res.status != http.StatusAccepted {
		t.Fatalf("%d %s", res.status, res.body)
	}
	if req := r.inv.last(); !req.Action.IsSequence() || string(req.Params) != `{"n":1}` || !req.Blocking {
		t.Fatalf("request %+v", req)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return b
}

// Components in packages resolve through the catalog: one's own packaged
// action, another tenant's shared package (through a binding too); a
// private package of another tenant is a 403 naming the component.
func TestSequenceCreatePackaged(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	for _, p := range []whisk.Package{
		{Namespace: "guest", Name: "mine"},
		{Namespace: "other", Name: "shared", Publish: true},
		{Namespace: "other", Name: "private"},
		{Namespace: "guest", Name: "bnd", Binding: whisk.Binding{Namespace: "other", Name: "shared"}},
	} {
		e, err := p.Entity()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.store.PutEntity(ctx, e, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []whisk.Action{
		{Namespace: "guest", Name: "mine/a"}, {Namespace: "other", Name: "shared/b"}, {Namespace: "other", Name: "private/c"},
	} {
		a.Version, a.Exec, a.Limits = "0.0.1", whisk.Exec{Kind: "python:3.11", Code: "x"}, r.limits.Defaults()
		if _, err := r.store.PutAction(ctx, a, 0); err != nil {
			t.Fatal(err)
		}
	}
	put := func(body string) resp {
		return r.do(t, http.MethodPut, "/api/v1/namespaces/_/actions/s?overwrite=true", body, asGuest)
	}
	res := put(seqPut("/_/mine/a", "/other/shared/b", "/_/bnd/b"))
	var a whisk.Action
	if err := json.Unmarshal(res.body, &a); res.status != 200 || err != nil ||
		!reflect.DeepEqual(a.Exec.Components, []string{"/guest/mine/a", "/other/shared/b", "/guest/bnd/b"}) {
		t.Fatalf("%d %s", res.status, res.body)
	}
	// OpenWhisk names the component resource: ns/pkg/name.
	wantError(t, put(seqPut("/_/mine/a", "/other/private/c")), 403, whisk.MsgNotAuthorized("other/private/c"))
	wantError(t, put(seqPut("/other/shared/nothere")), 400, whisk.MsgSequenceComponentGone)
}
