package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// testPackagedActions: an action of package p is stored as "p/<name>" of
// its namespace; ListActions lists it with the others, ListPackageActions
// and CountPackageActions only those of p (not of "p2", nor a top-level
// "p", nor names that merely start with "p"), with code left out.
func testPackagedActions(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	for _, name := range []string{"p", "p/b", "p/a", "p2/a", "pa", "q/p", "p_/x", "p%/y"} {
		if _, err := s.PutAction(ctx, newAction("ns", name, "code of "+name), 0); err != nil {
			t.Fatalf("PutAction %s: %v", name, err)
		}
	}
	if _, err := s.PutAction(ctx, newAction("ns2", "p/c", "x"), 0); err != nil {
		t.Fatal(err)
	}
	a, err := s.GetAction(ctx, "ns", "p/a")
	if err != nil || a.Name != "p/a" || a.Exec.Code != "code of p/a" {
		t.Fatalf("GetAction p/a = %+v, %v", a, err)
	}
	all, err := s.ListActions(ctx, "ns", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(all); got != 8 {
		t.Errorf("ListActions lists %d actions (%v), want 8", got, actionNames(all))
	}
	for _, tc := range []struct {
		ns, pkg     string
		skip, limit int
		want        []string
		count       int
	}{
		{"ns", "p", 0, 0, []string{"p/a", "p/b"}, 2},
		{"ns", "p", 1, 0, []string{"p/b"}, 2},
		{"ns", "p", 0, 1, []string{"p/a"}, 2},
		{"ns", "p2", 0, 0, []string{"p2/a"}, 1},
		{"ns", "p_", 0, 0, []string{"p_/x"}, 1},
		{"ns", "p%", 0, 0, []string{"p%/y"}, 1},
		{"ns", "none", 0, 0, []string{}, 0},
		{"ns2", "p", 0, 0, []string{"p/c"}, 1},
	} {
		got, err := s.ListPackageActions(ctx, tc.ns, tc.pkg, tc.skip, tc.limit)
		if err != nil {
			t.Fatalf("ListPackageActions %s/%s: %v", tc.ns, tc.pkg, err)
		}
		if names := actionNames(got); !slices.Equal(names, tc.want) {
			t.Errorf("ListPackageActions(%s, %s, %d, %d) = %v, want %v", tc.ns, tc.pkg, tc.skip, tc.limit, names, tc.want)
		}
		for _, a := range got {
			if a.Exec.Code != "" || a.Exec.Kind == "" {
				t.Errorf("%s listed with code %q, kind %q", a.Name, a.Exec.Code, a.Exec.Kind)
			}
		}
		n, err := s.CountPackageActions(ctx, tc.ns, tc.pkg)
		if err != nil || n != tc.count {
			t.Errorf("CountPackageActions(%s, %s) = %d, %v; want %d", tc.ns, tc.pkg, n, err, tc.count)
		}
	}
}

// testActivationPackageFilter: the name filter of a packaged action's
// records is "pkg/name" ("binding/name" through a binding), while the
// record keeps the bare name.
func testActivationPackageFilter(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	str := func(v string) []byte { return whisk.AppendJSONString(nil, v) }
	mk := func(id int, path, binding string) whisk.Activation {
		a := newActivation("ns", "a", id, int64(1000*id))
		a.Annotations = whisk.Params{{Key: whisk.AnnPath, Value: str(path)}}
		if binding != "" {
			a.Annotations = append(a.Annotations, whisk.KeyValue{Key: whisk.AnnBinding, Value: str(binding)})
		}
		return a
	}
	for _, a := range []whisk.Activation{
		mk(1, "ns/a", ""), mk(2, "ns/pkg/a", ""), mk(3, "owner/pkg/a", "ns/b"), mk(4, "owner/pkg/a", ""),
	} {
		if err := s.PutActivation(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string][]int{"a": {1}, "pkg/a": {4, 2}, "b/a": {3}} {
		got, err := s.ListActivations(ctx, "ns", store.ActivationFilter{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		var ids []whisk.ActivationID
		for _, id := range want {
			ids = append(ids, whisk.ActivationID(fmt.Sprintf("%032x", id)))
		}
		if !slices.Equal(activationIDs(got), ids) {
			t.Errorf("name %q: %v, want %v", name, activationIDs(got), ids)
		}
		for _, a := range got {
			if a.Name != "a" {
				t.Errorf("record name %q, want the bare name", a.Name)
			}
		}
		if n, err := s.CountActivations(ctx, "ns", store.ActivationFilter{Name: name}); err != nil || n != len(want) {
			t.Errorf("count %q = %d, %v; want %d", name, n, err, len(want))
		}
	}
}
