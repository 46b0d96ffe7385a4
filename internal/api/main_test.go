package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/catalog"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/testenv"
)

// TestMain fails the package when a test leaves a goroutine running.
func TestMain(m *testing.M) { testenv.Main(m) }

// newHandler is New for a test: the catalog, when not given, is one over
// deps.Store, as the process wires it.
func newHandler(t testing.TB, cfg Config, deps Deps) http.Handler {
	t.Helper()
	if deps.Catalog == nil && deps.Store != nil {
		deps.Catalog = catalog.New(deps.Store)
	}
	h, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestNewValidatesDeps: a missing capability is an error at start naming
// it, never a panic or a silent downgrade.
func TestNewValidatesDeps(t *testing.T) {
	st := newRig(t).store
	full := Deps{Store: st, Catalog: catalog.New(st), Invoker: &fakeInvoker{}, Runtimes: manifest.Default(), Topics: memory.New(nil)}
	if _, err := New(Config{}, full); err != nil {
		t.Fatalf("complete Deps: %v", err)
	}
	for _, c := range []struct {
		name string
		drop func(*Deps)
	}{
		{"Store", func(d *Deps) { d.Store = nil }},
		{"Catalog", func(d *Deps) { d.Catalog = nil }},
		{"Invoker", func(d *Deps) { d.Invoker = nil }},
		{"Runtimes", func(d *Deps) { d.Runtimes = nil }},
		{"Topics", func(d *Deps) { d.Topics = nil }},
	} {
		d := full
		c.drop(&d)
		h, err := New(Config{}, d)
		if err == nil || h != nil || !strings.Contains(err.Error(), "Deps."+c.name) {
			t.Errorf("without %s: handler %v, error %v", c.name, h, err)
		}
	}
}
