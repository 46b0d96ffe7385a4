package api

import (
	"context"
	"testing"
)

// TestBlockedSubject: a subject blocked by the operator gets 401 with
// OpenWhisk's message on every call (OpenWhisk's identities view leaves
// blocked subjects out, so their keys no longer authenticate), and its
// calls work again once unblocked; other subjects are not affected.
func TestBlockedSubject(t *testing.T) {
	r := newRig(t)
	if n, err := r.store.SetSubjectBlocked(context.Background(), "guest", true); err != nil || n != 1 {
		t.Fatalf("block: %d, %v", n, err)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/namespaces/_/actions", ""},
		{"PUT", "/api/v1/namespaces/_/actions/hello", helloPut},
		{"POST", "/api/v1/namespaces/_/actions/hello?blocking=true", "{}"},
		{"GET", "/api/v1/namespaces", ""},
	} {
		res := r.do(t, c.method, c.path, c.body, asGuest)
		if res.status != 401 || res.json(t)["error"] != "The supplied authentication is invalid." {
			t.Errorf("%s %s as a blocked subject: %d %s", c.method, c.path, res.status, res.body)
		}
	}
	if res := r.do(t, "GET", "/api/v1/namespaces/_/actions", "", "other"); res.status != 200 {
		t.Fatalf("another subject: %d %s", res.status, res.body)
	}
	if _, err := r.store.SetSubjectBlocked(context.Background(), "guest", false); err != nil {
		t.Fatal(err)
	}
	if res := r.do(t, "GET", "/api/v1/namespaces/_/actions", "", asGuest); res.status != 200 {
		t.Fatalf("after unblock: %d %s", res.status, res.body)
	}
}
