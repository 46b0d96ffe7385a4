package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// entityTests are the contract cases of the entity methods.
var entityTests = []struct {
	name string
	fn   func(*testing.T, store.Store)
}{
	{"EntityRoundTrip", testEntityRoundTrip},
	{"EntityCompareAndSwap", testEntityCAS},
	{"EntityDelete", testEntityDelete},
	{"EntitySharedNames", testEntitySharedNames},
	{"EntityOwnNameSpaces", testEntityOwnNameSpaces},
	{"EntityListAndCount", testEntityList},
	{"EntityApplyAllOrNothing", testEntityApply},
	{"EntityConcurrentApply", testEntityConcurrentApply},
	{"EntityBadInput", testEntityBadInput},
}

func newEntity(kind whisk.EntityKind, ns, name, doc string) whisk.Entity {
	return whisk.Entity{Kind: kind, Namespace: ns, Name: name, Doc: raw(doc)}
}

// sameDoc compares two JSON documents by value (a store may reorder keys).
func sameDoc(t *testing.T, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("stored doc %q: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, g, w) {
		t.Fatalf("doc = %s, want %s", got, want)
	}
}

func testEntityRoundTrip(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	in := newEntity(whisk.EntityPackage, "ns", "p", `{"name":"p","parameters":[{"key":"a","value":1}]}`)
	in.Publish = true
	put, err := s.PutEntity(ctx, in, 0)
	if err != nil {
		t.Fatal(err)
	}
	if put.Rev != 1 || put.Updated == 0 {
		t.Fatalf("put returned Rev %d Updated %d, want 1 and a time", put.Rev, put.Updated)
	}
	got, err := s.GetEntity(ctx, whisk.EntityPackage, "ns", "p")
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != whisk.EntityPackage || got.Namespace != "ns" || got.Name != "p" || !got.Publish ||
		got.Rev != 1 || got.Updated != put.Updated {
		t.Fatalf("got %+v, want the entity as put (%+v)", got, put)
	}
	sameDoc(t, got.Doc, in.Doc)
	_, err = s.PutEntity(ctx, in, 0)
	wantKind(t, err, whisk.Conflict, whisk.MsgExists)
	_, err = s.GetEntity(ctx, whisk.EntityPackage, "ns", "missing")
	wantKind(t, err, whisk.NotFound, "")
	_, err = s.GetEntity(ctx, whisk.EntityPackage, "other", "p")
	wantKind(t, err, whisk.NotFound, "")
}

func testEntityCAS(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	v1, err := s.PutEntity(ctx, newEntity(whisk.EntityTrigger, "ns", "t", `{"v":1}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := s.PutEntity(ctx, newEntity(whisk.EntityTrigger, "ns", "t", `{"v":2}`), v1.Rev)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Rev != 2 {
		t.Fatalf("Rev = %d, want 2", v2.Rev)
	}
	_, err = s.PutEntity(ctx, newEntity(whisk.EntityTrigger, "ns", "t", `{"v":3}`), v1.Rev)
	wantKind(t, err, whisk.Conflict, whisk.MsgConcurrentUpdate)
	got, err := s.GetEntity(ctx, whisk.EntityTrigger, "ns", "t")
	if err != nil {
		t.Fatal(err)
	}
	sameDoc(t, got.Doc, raw(`{"v":2}`))
	_, err = s.PutEntity(ctx, newEntity(whisk.EntityTrigger, "ns", "gone", `{}`), 4)
	wantKind(t, err, whisk.NotFound, "")
}

func testEntityDelete(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	put, err := s.PutEntity(ctx, newEntity(whisk.EntityRule, "ns", "r", `{"x":"y"}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.DeleteEntity(ctx, whisk.EntityRule, "ns", "r", put.Rev+1)
	wantKind(t, err, whisk.Conflict, whisk.MsgConcurrentUpdate)
	old, err := s.DeleteEntity(ctx, whisk.EntityRule, "ns", "r", put.Rev)
	if err != nil {
		t.Fatal(err)
	}
	if old.Rev != put.Rev || old.Name != "r" {
		t.Fatalf("deleted %+v, want the stored rule", old)
	}
	sameDoc(t, old.Doc, raw(`{"x":"y"}`))
	_, err = s.GetEntity(ctx, whisk.EntityRule, "ns", "r")
	wantKind(t, err, whisk.NotFound, "")
	_, err = s.DeleteEntity(ctx, whisk.EntityRule, "ns", "r", 0)
	wantKind(t, err, whisk.NotFound, "")
	// Deleted names are free again, for any kind.
	if _, err := s.PutEntity(ctx, newEntity(whisk.EntityPackage, "ns", "r", `{}`), 0); err != nil {
		t.Fatal(err)
	}
}

// testEntitySharedNames: packages, triggers, rules and default-package
// actions of one namespace share one name space; reaching a name through
// the wrong collection is a Conflict.
func testEntitySharedNames(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	if _, err := s.PutEntity(ctx, newEntity(whisk.EntityPackage, "ns", "x", `{}`), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutAction(ctx, newAction("ns", "a", "code"), 0); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []whisk.EntityKind{whisk.EntityTrigger, whisk.EntityRule} {
		_, err := s.PutEntity(ctx, newEntity(kind, "ns", "x", `{}`), 0)
		wantKind(t, err, whisk.Conflict, whisk.MsgWrongCollection)
		_, err = s.GetEntity(ctx, kind, "ns", "x")
		wantKind(t, err, whisk.Conflict, whisk.MsgWrongCollection)
		_, err = s.DeleteEntity(ctx, kind, "ns", "x", 0)
		wantKind(t, err, whisk.Conflict, whisk.MsgWrongCollection)
		_, err = s.PutEntity(ctx, newEntity(kind, "ns", "a", `{}`), 0)
		wantKind(t, err, whisk.Conflict, whisk.MsgWrongCollection)
		_, err = s.GetEntity(ctx, kind, "ns", "a")
		wantKind(t, err, whisk.Conflict, whisk.MsgWrongCollection)
	}
	_, err := s.PutAction(ctx, newAction("ns", "x", "code"), 0)
	wantKind(t, err, whisk.Conflict, whisk.MsgWrongCollection)
	_, err = s.GetAction(ctx, "ns", "x")
	wantKind(t, err, whisk.Conflict, whisk.MsgWrongCollection)
	_, err = s.DeleteAction(ctx, "ns", "x")
	wantKind(t, err, whisk.Conflict, whisk.MsgWrongCollection)
	// The package still stands, untouched by the refused writes.
	if _, err := s.GetEntity(ctx, whisk.EntityPackage, "ns", "x"); err != nil {
		t.Fatal(err)
	}
	// Other namespaces and packaged actions ("ns/x" namespace) do not collide.
	if _, err := s.PutEntity(ctx, newEntity(whisk.EntityTrigger, "other", "x", `{}`), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutAction(ctx, newAction("ns/x", "x", "code"), 0); err != nil {
		t.Fatal(err)
	}
}

// testEntityOwnNameSpaces: API documents and alarms collide with nothing.
func testEntityOwnNameSpaces(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	if _, err := s.PutEntity(ctx, newEntity(whisk.EntityTrigger, "ns", "t", `{}`), 0); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []whisk.EntityKind{whisk.EntityAPI, whisk.EntityAlarm} {
		if _, err := s.PutEntity(ctx, newEntity(kind, "ns", "t", `{}`), 0); err != nil {
			t.Fatalf("%s named like a trigger: %v", kind, err)
		}
	}
	if _, err := s.PutEntity(ctx, newEntity(whisk.EntityAPI, "ns", "/base/path", `{}`), 0); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetEntity(ctx, whisk.EntityAPI, "ns", "/base/path")
	if err != nil || got.Name != "/base/path" {
		t.Fatalf("GetEntity(api, /base/path) = %+v, %v", got, err)
	}
	_, err = s.GetEntity(ctx, whisk.EntityAPI, "ns", "/nope")
	wantKind(t, err, whisk.NotFound, "")
}

func entityNames(es []whisk.Entity) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Namespace+"/"+e.Name)
	}
	return out
}

func testEntityList(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	// Written one after the other, so Updated does not decrease.
	for i, n := range []string{"a", "b", "c", "d"} {
		e := newEntity(whisk.EntityPackage, "ns", n, `{}`)
		e.Publish = i%2 == 0
		if _, err := s.PutEntity(ctx, e, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutEntity(ctx, newEntity(whisk.EntityPackage, "other", "z", `{}`), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutEntity(ctx, newEntity(whisk.EntityTrigger, "ns", "t", `{}`), 0); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListEntities(ctx, whisk.EntityPackage, "ns", store.EntityFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("listed %v, want the 4 packages of ns", entityNames(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].Updated < all[i].Updated {
			t.Fatalf("listed %v: not newest first", entityNames(all))
		}
	}
	page, err := s.ListEntities(ctx, whisk.EntityPackage, "ns", store.EntityFilter{Skip: 1, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(entityNames(page)) != fmt.Sprint(entityNames(all[1:3])) {
		t.Fatalf("page = %v, want %v", entityNames(page), entityNames(all[1:3]))
	}
	pub, err := s.ListEntities(ctx, whisk.EntityPackage, "ns", store.EntityFilter{PublicOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != 2 {
		t.Fatalf("public = %v, want a and c", entityNames(pub))
	}
	for _, e := range pub {
		if !e.Publish || (e.Name != "a" && e.Name != "c") {
			t.Fatalf("public = %v, want a and c", entityNames(pub))
		}
	}
	every, err := s.ListEntities(ctx, whisk.EntityPackage, "", store.EntityFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(every) != 5 {
		t.Fatalf("every namespace: %v, want 5 packages", entityNames(every))
	}
	for _, c := range []struct {
		ns   string
		f    store.EntityFilter
		want int
	}{{"ns", store.EntityFilter{}, 4}, {"ns", store.EntityFilter{PublicOnly: true}, 2}, {"", store.EntityFilter{}, 5}, {"none", store.EntityFilter{}, 0}} {
		n, err := s.CountEntities(ctx, whisk.EntityPackage, c.ns, c.f)
		if err != nil {
			t.Fatal(err)
		}
		if n != c.want {
			t.Errorf("CountEntities(%q, %+v) = %d, want %d", c.ns, c.f, n, c.want)
		}
	}
}

func testEntityApply(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	trig, err := s.PutEntity(ctx, newEntity(whisk.EntityTrigger, "ns", "t", `{"rules":{}}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.ApplyEntities(ctx, []store.EntityOp{
		{Entity: newEntity(whisk.EntityRule, "ns", "r", `{"trigger":"t"}`)},
		{Entity: newEntity(whisk.EntityTrigger, "ns", "t", `{"rules":{"ns/r":"active"}}`), ExpectRev: trig.Rev},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Rev != 1 || out[1].Rev != trig.Rev+1 {
		t.Fatalf("ApplyEntities returned %+v", out)
	}
	// A stale revision in the second op undoes the first.
	_, err = s.ApplyEntities(ctx, []store.EntityOp{
		{Entity: newEntity(whisk.EntityRule, "ns", "r2", `{}`)},
		{Entity: newEntity(whisk.EntityTrigger, "ns", "t", `{"rules":{}}`), ExpectRev: trig.Rev},
	})
	wantKind(t, err, whisk.Conflict, whisk.MsgConcurrentUpdate)
	_, err = s.GetEntity(ctx, whisk.EntityRule, "ns", "r2")
	wantKind(t, err, whisk.NotFound, "")
	// A delete and a put together.
	out, err = s.ApplyEntities(ctx, []store.EntityOp{
		{Delete: true, Entity: whisk.Entity{Kind: whisk.EntityRule, Namespace: "ns", Name: "r"}},
		{Entity: newEntity(whisk.EntityTrigger, "ns", "t", `{"rules":{}}`), ExpectRev: trig.Rev + 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	sameDoc(t, out[0].Doc, raw(`{"trigger":"t"}`))
	_, err = s.GetEntity(ctx, whisk.EntityRule, "ns", "r")
	wantKind(t, err, whisk.NotFound, "")
	got, err := s.GetEntity(ctx, whisk.EntityTrigger, "ns", "t")
	if err != nil {
		t.Fatal(err)
	}
	sameDoc(t, got.Doc, raw(`{"rules":{}}`))
}

// testEntityConcurrentApply: writers that each add themselves to one
// document with compare-and-swap lose no entry.
func testEntityConcurrentApply(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	if _, err := s.PutEntity(ctx, newEntity(whisk.EntityTrigger, "ns", "t", `{}`), 0); err != nil {
		t.Fatal(err)
	}
	const writers = 12
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			for {
				cur, err := s.GetEntity(ctx, whisk.EntityTrigger, "ns", "t")
				if err != nil {
					errs <- err
					return
				}
				var m map[string]int
				if err := json.Unmarshal(cur.Doc, &m); err != nil {
					errs <- err
					return
				}
				m[fmt.Sprint(i)] = i
				doc, _ := json.Marshal(m)
				_, err = s.ApplyEntities(ctx, []store.EntityOp{
					{Entity: newEntity(whisk.EntityRule, "ns", fmt.Sprint("r", i), `{}`)},
					{Entity: whisk.Entity{Kind: whisk.EntityTrigger, Namespace: "ns", Name: "t", Doc: doc}, ExpectRev: cur.Rev},
				})
				if err == nil {
					return
				}
				if !whisk.IsKind(err, whisk.Conflict) {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.GetEntity(ctx, whisk.EntityTrigger, "ns", "t")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]int
	if err := json.Unmarshal(got.Doc, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != writers || got.Rev != writers+1 {
		t.Fatalf("trigger holds %d entries at Rev %d, want %d at %d", len(m), got.Rev, writers, writers+1)
	}
	n, err := s.CountEntities(ctx, whisk.EntityRule, "ns", store.EntityFilter{})
	if err != nil || n != writers {
		t.Fatalf("rules = %d (%v), want %d", n, err, writers)
	}
}

func testEntityBadInput(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	_, err := s.PutEntity(ctx, newEntity("bogus", "ns", "x", `{}`), 0)
	wantKind(t, err, whisk.Invalid, "")
	_, err = s.PutEntity(ctx, newEntity(whisk.EntityPackage, "ns", "x", `{not json`), 0)
	wantKind(t, err, whisk.Invalid, "")
	_, err = s.PutEntity(ctx, newEntity(whisk.EntityPackage, "ns", "x", `{}`), -1)
	wantKind(t, err, whisk.Invalid, "")
	_, err = s.GetEntity(ctx, whisk.EntityPackage, "ns", "x")
	wantKind(t, err, whisk.NotFound, "")
}
