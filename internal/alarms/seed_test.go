package alarms

import (
	"context"
	"testing"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Seeding twice leaves one shared package with three feed actions.
func TestSeedIdempotent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for range 2 {
		if err := Seed(ctx, e.st, 1); err != nil {
			t.Fatal(err)
		}
	}
	pkgs, err := e.st.ListEntities(ctx, whisk.EntityPackage, "", store.EntityFilter{PublicOnly: true})
	if err != nil || len(pkgs) != 1 || pkgs[0].Namespace != SystemNamespace || pkgs[0].Name != PackageName {
		t.Fatalf("published packages %+v %v", pkgs, err)
	}
	p, err := whisk.PackageFromEntity(pkgs[0])
	if err != nil || !p.Publish || p.IsBinding() {
		t.Fatalf("package %+v %v", p, err)
	}
	for _, f := range []string{FeedAlarm, FeedOnce, FeedInterval} {
		a, err := e.st.GetAction(ctx, SystemNamespace, PackageName+"/"+f)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := a.Annotations.Get("feed"); !ok || string(v) != "true" {
			t.Errorf("%s: feed annotation %s %v", f, v, ok)
		}
	}
}
