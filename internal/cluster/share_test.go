package cluster

import (
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// HasDemand sees a namespace's demand keys, and only that namespace's;
// NamespaceShare lists the same wanting actions.
func TestHasDemand(t *testing.T) {
	e := startEtcd(t)
	c := dial(t, e.Endpoints())
	s, _ := newSession(t, c, 5*time.Second)
	ctx := ctxT(t)
	if got, err := c.HasDemand(ctx, "ns"); err != nil || got {
		t.Fatalf("HasDemand with no demand: %v, %v; want false", got, err)
	}
	meek := whisk.FQN{Namespace: "ns", Name: "meek"}
	if err := s.PutDemand(ctx, meek, "scheduler0"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.HasDemand(ctx, "ns"); err != nil || !got {
		t.Fatalf("HasDemand after PutDemand: %v, %v; want true", got, err)
	}
	if got, err := c.HasDemand(ctx, "n"); err != nil || got {
		t.Fatalf("HasDemand of a namespace whose name prefixes another's: %v, %v; want false", got, err)
	}
	if _, wanting, err := c.NamespaceShare(ctx, "ns"); err != nil || !wanting["meek"] {
		t.Fatalf("NamespaceShare wanting %v, %v; want meek", wanting, err)
	}
	if err := s.DeleteDemand(ctx, meek); err != nil {
		t.Fatal(err)
	}
	if got, err := c.HasDemand(ctx, "ns"); err != nil || got {
		t.Fatalf("HasDemand after DeleteDemand: %v, %v; want false", got, err)
	}
}
