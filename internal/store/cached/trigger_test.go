package cached

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// TestTriggersReadThrough: a trigger written by another process (its
// rules' status changed) is seen at once, while a package written the
// same way is served from the cache until its TTL.
func TestTriggersReadThrough(t *testing.T) {
	s, inner, _ := setup(t, Config{TTL: time.Hour})
	ctx := t.Context()
	put := func(kind whisk.EntityKind, name, doc string, rev int64) {
		t.Helper()
		if _, err := inner.Store.PutEntity(ctx, whisk.Entity{Kind: kind, Namespace: "ns", Name: name, Doc: json.RawMessage(doc)}, rev); err != nil {
			t.Fatal(err)
		}
	}
	get := func(kind whisk.EntityKind, name string) string {
		t.Helper()
		e, err := s.GetEntity(ctx, kind, "ns", name)
		if err != nil {
			t.Fatal(err)
		}
		return string(e.Doc)
	}
	put(whisk.EntityTrigger, "t", `{"rules":{"ns/r":{"status":"inactive"}}}`, 0)
	put(whisk.EntityPackage, "p", `{"v":1}`, 0)
	if get(whisk.EntityTrigger, "t") == "" || get(whisk.EntityPackage, "p") != `{"v":1}` {
		t.Fatal("first reads")
	}
	put(whisk.EntityTrigger, "t", `{"rules":{"ns/r":{"status":"active"}}}`, 1)
	put(whisk.EntityPackage, "p", `{"v":2}`, 1)
	if got := get(whisk.EntityTrigger, "t"); got != `{"rules":{"ns/r":{"status":"active"}}}` {
		t.Fatalf("trigger after another process's write: %s", got)
	}
	if got := get(whisk.EntityPackage, "p"); got != `{"v":1}` {
		t.Fatalf("package within its TTL: %s, want the cached one", got)
	}
}
