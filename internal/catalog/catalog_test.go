package catalog_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/eddy-faas/eddy/internal/catalog"
	"github.com/eddy-faas/eddy/internal/store/sqlite"
	"github.com/eddy-faas/eddy/internal/whisk"
)

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// world is a SQLite store with namespace sys sharing a package and alice
// binding to it (see each put).
func world(t *testing.T) *catalog.Catalog {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, ":memory:", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pkg := func(p whisk.Package) {
		t.Helper()
		e, err := p.Entity()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutEntity(ctx, e, 0); err != nil {
			t.Fatalf("put package %s: %v", p.FullName(), err)
		}
	}
	action := func(ns, name string, params whisk.Params) {
		t.Helper()
		a := whisk.Action{Namespace: ns, Name: name, Version: "0.0.1", Exec: whisk.Exec{Kind: "python:3.11", Code: "x"},
			Parameters: params, Limits: whisk.Limits{Timeout: 1000, Memory: 256, Logs: 10, Concurrency: 1}}
		if _, err := st.PutAction(ctx, a, 0); err != nil {
			t.Fatalf("put action %s/%s: %v", ns, name, err)
		}
	}
	pkg(whisk.Package{Namespace: "sys", Name: "shared", Publish: true, Version: "0.0.1",
		Parameters: whisk.Params{{Key: "p", Value: raw("1")}, {Key: "q", Value: raw("1")}}})
	action("sys", "shared/echo", whisk.Params{{Key: "q", Value: raw("2")}, {Key: "a", Value: raw("3")}})
	pkg(whisk.Package{Namespace: "sys", Name: "private", Version: "0.0.1"})
	action("sys", "private/x", nil)
	action("sys", "top2", nil)
	// A published binding: bindings are never shared, published or not.
	pkg(whisk.Package{Namespace: "sys", Name: "sbind", Publish: true, Binding: whisk.Binding{Namespace: "sys", Name: "shared"}})
	pkg(whisk.Package{Namespace: "alice", Name: "b", Binding: whisk.Binding{Namespace: "sys", Name: "shared"},
		Parameters: whisk.Params{{Key: "p", Value: raw("9")}}})
	// Bindings the API would refuse to make, as left behind by deletes.
	pkg(whisk.Package{Namespace: "alice", Name: "bp", Binding: whisk.Binding{Namespace: "sys", Name: "private"}})
	pkg(whisk.Package{Namespace: "alice", Name: "bmissing", Binding: whisk.Binding{Namespace: "alice", Name: "gone"}})
	pkg(whisk.Package{Namespace: "alice", Name: "own"})
	action("alice", "own/y", nil)
	action("alice", "top", nil)
	action("alice", "act", nil)
	if _, err := st.PutEntity(ctx, whisk.Entity{Kind: whisk.EntityTrigger, Namespace: "alice", Name: "t", Doc: raw("{}")}, 0); err != nil {
		t.Fatal(err)
	}
	return catalog.New(st)
}

func TestAction(t *testing.T) {
	c := world(t)
	ctx := context.Background()
	type want struct {
		kind    whisk.Kind // Other: found
		msg     string
		path    string
		binding string
		params  string
	}
	forbidden := func(res string) want { return want{kind: whisk.Forbidden, msg: whisk.MsgNotAuthorized(res)} }
	notFound := want{kind: whisk.NotFound, msg: whisk.MsgNotFound}
	for _, tc := range []struct {
		caller, ref string
		want        want
	}{
		{"alice", "/_/top", want{path: "alice/top", params: `null`}},
		{"alice", "/alice/top", want{path: "alice/top", params: `null`}},
		{"alice", "/_/nope", notFound},
		{"alice", "/_/t", want{kind: whisk.Conflict, msg: whisk.MsgWrongCollection}},
		{"alice", "/sys/top2", forbidden("sys/top2")},
		{"alice", "/sys/nope", forbidden("sys/nope")},
		{"alice", "/sys/shared/echo", want{path: "sys/shared/echo",
			params: `[{"key":"p","value":1},{"key":"q","value":2},{"key":"a","value":3}]`}},
		{"alice", "/sys/shared/missing", notFound},
		{"alice", "/alice/b/echo", want{path: "sys/shared/echo", binding: "alice/b",
			params: `[{"key":"p","value":9},{"key":"q","value":2},{"key":"a","value":3}]`}},
		{"alice", "/_/b/echo", want{path: "sys/shared/echo", binding: "alice/b",
			params: `[{"key":"p","value":9},{"key":"q","value":2},{"key":"a","value":3}]`}},
		{"alice", "/sys/private/x", forbidden("sys/private")},
		{"alice", "/sys/sbind/echo", forbidden("sys/sbind")},
		{"alice", "/sys/nope/x", forbidden("sys/nope")},
		{"alice", "/alice/nope/x", notFound},
		{"alice", "/alice/bp/x", forbidden("alice/bp")},
		{"alice", "/alice/bmissing/x", notFound},
		{"alice", "/alice/own/y", want{path: "alice/own/y", params: `[]`}},
		{"alice", "/alice/own/missing", notFound},
		{"alice", "/alice/t/x", want{kind: whisk.Conflict, msg: whisk.MsgWrongCollection}},
		{"alice", "/alice/act/x", want{kind: whisk.Conflict, msg: whisk.MsgWrongCollection}},
		{"sys", "/_/private/x", want{path: "sys/private/x", params: `[]`}},
		{"sys", "/sys/sbind/echo", want{path: "sys/shared/echo", binding: "sys/sbind",
			params: `[{"key":"p","value":1},{"key":"q","value":2},{"key":"a","value":3}]`}},
		{"sys", "/alice/own/y", forbidden("alice/own")},
	} {
		ref, err := whisk.ParseFullName(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Action(ctx, tc.caller, ref)
		if tc.want.kind != whisk.Other {
			if !whisk.IsKind(err, tc.want.kind) || whisk.UserMessage(err) != tc.want.msg {
				t.Errorf("%s as %s: err %v (%v), want %v %q", tc.ref, tc.caller, err, whisk.KindOf(err), tc.want.kind, tc.want.msg)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s as %s: %v", tc.ref, tc.caller, err)
			continue
		}
		params, _ := json.Marshal(got.Action.Parameters)
		if p := got.Action.FQN().String(); p != tc.want.path || got.Binding != tc.want.binding || string(params) != tc.want.params {
			t.Errorf("%s as %s: path %s binding %q params %s; want %s %q %s",
				tc.ref, tc.caller, p, got.Binding, params, tc.want.path, tc.want.binding, tc.want.params)
		}
	}
}

func TestReadPackage(t *testing.T) {
	c := world(t)
	ctx := context.Background()
	r, err := c.ReadPackage(ctx, "alice", "_", "b")
	if err != nil {
		t.Fatal(err)
	}
	if r.Package.FullName() != "alice/b" || r.Target.FullName() != "sys/shared" || r.BindingName() != "alice/b" {
		t.Errorf("binding resolved to %s → %s (%q)", r.Package.FullName(), r.Target.FullName(), r.BindingName())
	}
	if p, _ := json.Marshal(r.Params()); string(p) != `[{"key":"p","value":9},{"key":"q","value":1}]` {
		t.Errorf("merged params %s", p)
	}
	r, err = c.ReadPackage(ctx, "alice", "sys", "shared")
	if err != nil || r.Target.FullName() != "sys/shared" || r.BindingName() != "" {
		t.Errorf("shared package: %+v, %v", r, err)
	}
	for _, tc := range []struct {
		caller, ns, name string
		kind             whisk.Kind
		msg              string
	}{
		{"alice", "sys", "private", whisk.Forbidden, whisk.MsgNotAuthorized("sys/private")},
		{"alice", "sys", "sbind", whisk.Forbidden, whisk.MsgNotAuthorized("sys/sbind")},
		{"alice", "sys", "top2", whisk.Forbidden, whisk.MsgNotAuthorized("sys/top2")},
		{"alice", "alice", "missing", whisk.NotFound, whisk.MsgNotFound},
		{"alice", "_", "top", whisk.Conflict, whisk.MsgWrongCollection},
		{"alice", "_", "bp", whisk.Forbidden, whisk.MsgNotAuthorized("alice/bp")},
		{"alice", "bad name!", "x", whisk.Forbidden, whisk.MsgNotAuthorized("bad name!/x")},
	} {
		_, err := c.ReadPackage(ctx, tc.caller, tc.ns, tc.name)
		if !whisk.IsKind(err, tc.kind) || whisk.UserMessage(err) != tc.msg {
			t.Errorf("%s/%s as %s: %v, want %v %q", tc.ns, tc.name, tc.caller, err, tc.kind, tc.msg)
		}
	}
}
