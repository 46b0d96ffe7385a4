package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// TestTenantIsolation tries every entity and activation route with another
// tenant's key. Naming the other namespace is 403 (OpenWhisk's message);
// "_" is the caller's own namespace, where the other tenant's entities and
// activations do not exist (404) and lists do not show them; writes land in
// the caller's namespace and leave the other's untouched.
func TestTenantIsolation(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if res := r.do(t, "PUT", "/api/v1/namespaces/_/actions/hello", helloPut, asGuest); res.status != 200 {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	gid := whisk.NewActivationID()
	if err := r.store.PutActivation(ctx, record(gid, "hello", 1000, 0, `{"secret":1}`)); err != nil {
		t.Fatal(err)
	}
	act := "/api/v1/namespaces/guest/activations/" + string(gid)
	const otherPut = `{"namespace":"guest","exec":{"kind":"python:3.11","code":"def main(a):\n  return {'mine': 1}"}}`

	forbidden := []struct{ method, path, body string }{
		{"GET", "/api/v1/namespaces/guest/actions", ""},
		{"GET", "/api/v1/namespaces/guest/actions/hello", ""},
		{"PUT", "/api/v1/namespaces/guest/actions/hello?overwrite=true", otherPut},
		{"PUT", "/api/v1/namespaces/guest/actions/new", otherPut},
		{"DELETE", "/api/v1/namespaces/guest/actions/hello", ""},
		{"POST", "/api/v1/namespaces/guest/actions/hello", "{}"},
		{"POST", "/api/v1/namespaces/guest/actions/hello?blocking=true&result=true", "{}"},
		{"GET", "/api/v1/namespaces/guest/activations", ""},
		{"GET", "/api/v1/namespaces/guest/activations?name=hello&docs=true", ""},
		{"GET", act, ""},
		{"GET", act + "/logs", ""},
		{"GET", act + "/result", ""},
		{"GET", "/api/v1/namespaces/guest/limits", ""},
	}
	for _, tc := range forbidden {
		t.Run("other names guest: "+tc.method+" "+tc.path, func(t *testing.T) {
			wantError(t, r.do(t, tc.method, tc.path, tc.body, "other"), 403, forbiddenMsg(tc.path))
		})
		// And the same the other way round.
		t.Run("guest names other: "+tc.method+" "+tc.path, func(t *testing.T) {
			path := "/api/v1/namespaces/other" + tc.path[len("/api/v1/namespaces/guest"):]
			wantError(t, r.do(t, tc.method, path, tc.body, asGuest), 403, forbiddenMsg(path))
		})
	}
	// Nothing reached the invoker.
	r.inv.mu.Lock()
	n := len(r.inv.reqs)
	r.inv.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d invocations reached the invoker through forbidden routes", n)
	}

	notFound := []struct{ method, path, body string }{
		{"GET", "/api/v1/namespaces/_/actions/hello", ""},
		{"DELETE", "/api/v1/namespaces/_/actions/hello", ""},
		{"POST", "/api/v1/namespaces/_/actions/hello", "{}"},
		{"POST", "/api/v1/namespaces/_/actions/hello?blocking=true", "{}"},
		{"GET", "/api/v1/namespaces/_/activations/" + string(gid), ""},
		{"GET", "/api/v1/namespaces/_/activations/" + string(gid) + "/logs", ""},
		{"GET", "/api/v1/namespaces/_/activations/" + string(gid) + "/result", ""},
		{"GET", "/api/v1/namespaces/other/activations/" + string(gid), ""},
	}
	for _, tc := range notFound {
		t.Run("other's own namespace: "+tc.method+" "+tc.path, func(t *testing.T) {
			wantError(t, r.do(t, tc.method, tc.path, tc.body, "other"), 404, whisk.MsgNotFound)
		})
	}

	t.Run("lists show only the caller's", func(t *testing.T) {
		for _, path := range []string{"/api/v1/namespaces/_/actions", "/api/v1/namespaces/other/actions",
			"/api/v1/namespaces/_/activations", "/api/v1/namespaces/_/activations?name=hello&docs=true"} {
			res := r.do(t, "GET", path, "", "other")
			if res.status != 200 || string(res.body) != "[]" {
				t.Errorf("GET %s as other: %d %s, want 200 []", path, res.status, res.body)
			}
		}
		for _, q := range []string{"?count=true", "?name=hello&count=true"} {
			res := r.do(t, "GET", "/api/v1/namespaces/_/activations"+q, "", "other")
			if m := res.json(t); res.status != 200 || m["activations"] != float64(0) {
				t.Errorf("count %s as other: %d %s", q, res.status, res.body)
			}
		}
		res := r.do(t, "GET", "/api/v1/namespaces", "", "other")
		if res.status != 200 || string(res.body) != `["other"]` {
			t.Errorf("namespaces as other: %d %s", res.status, res.body)
		}
	})

	t.Run("a write under _ lands in the caller's namespace", func(t *testing.T) {
		// The body names guest; the path's "_" (the caller's namespace) wins.
		res := r.do(t, "PUT", "/api/v1/namespaces/_/actions/hello", otherPut, "other")
		if res.status != 200 {
			t.Fatalf("PUT as other: %d %s", res.status, res.body)
		}
		if a := decodeAction(t, res.body); a.Namespace != "other" {
			t.Fatalf("created in %q, want other", a.Namespace)
		}
		mine, err := r.store.GetAction(ctx, "other", "hello")
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := r.store.GetAction(ctx, "guest", "hello")
		if err != nil || theirs.Exec.Code == mine.Exec.Code || theirs.Rev != 1 {
			t.Fatalf("guest's action changed: %+v, %v", theirs, err)
		}
		if res := r.do(t, "POST", "/api/v1/namespaces/_/actions/hello", "{}", "other"); res.status != 202 {
			t.Fatalf("invoke own: %d %s", res.status, res.body)
		}
		if req := r.inv.last(); req.Identity.Namespace != "other" || req.Action.Namespace != "other" {
			t.Fatalf("invoked %s as %s", req.Action.FQN(), req.Identity.Namespace)
		}
		if res := r.do(t, "DELETE", "/api/v1/namespaces/_/actions/hello", "", "other"); res.status != 200 {
			t.Fatalf("delete own: %d %s", res.status, res.body)
		}
		if _, err := r.store.GetAction(ctx, "guest", "hello"); err != nil {
			t.Fatalf("guest's action after other's delete: %v", err)
		}
	})

	t.Run("a key authenticates only with its own secret", func(t *testing.T) {
		res := r.do(t, "GET", "/api/v1/namespaces/_/actions", "",
			"Basic "+basic(otherUUID, whisk.GuestKey))
		wantError(t, res, 401, whisk.MsgAuthInvalid)
	})

	t.Run("limits are the caller's namespace's", func(t *testing.T) {
		if err := r.store.PutNamespaceLimits(ctx, "other", whisk.NamespaceLimits{InvocationsPerMinute: 7, ConcurrentContainers: 2}); err != nil {
			t.Fatal(err)
		}
		var got struct{ InvocationsPerMinute, ConcurrentInvocations int }
		res := r.do(t, "GET", "/api/v1/namespaces/_/limits", "", "other")
		if err := json.Unmarshal(res.body, &got); err != nil || got.InvocationsPerMinute != 7 || got.ConcurrentInvocations != 2 {
			t.Errorf("other's limits: %d %s", res.status, res.body)
		}
		res = r.do(t, "GET", "/api/v1/namespaces/_/limits", "", asGuest)
		if err := json.Unmarshal(res.body, &got); err != nil || got.InvocationsPerMinute != r.limits.InvocationsPerMinute {
			t.Errorf("guest's limits: %d %s", res.status, res.body)
		}
	})
}

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// forbiddenMsg is OpenWhisk's 403 for a route of another namespace: it
// names 'ns' for a collection, 'ns/entity' for an entity.
func forbiddenMsg(path string) string {
	p, _, _ := strings.Cut(path, "?")
	parts := strings.Split(strings.TrimPrefix(p, "/api/v1/namespaces/"), "/")
	if len(parts) >= 3 {
		return whisk.MsgNotAuthorized(parts[0] + "/" + parts[2])
	}
	return whisk.MsgNotAuthorized(parts[0])
}
