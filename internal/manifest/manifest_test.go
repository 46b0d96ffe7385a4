package manifest

import (
	"slices"
	"testing"

	"github.com/eddy-faas/eddy/internal/runtime"
	"github.com/eddy-faas/eddy/internal/whisk"
)

func TestResolve(t *testing.T) {
	m := Default()
	for in, want := range map[string]string{
		"python:default": "python:3.11", "python:3.11": "python:3.11", "python": "python:3.11",
		"nodejs:default": "nodejs:18", "nodejs:18": "nodejs:18", "nodejs": "nodejs:18",
		"native": "native", "native:default": "native", "blackbox": "blackbox",
		"python:3.13": "python:3.13", "nodejs:20": "nodejs:20",
		"go": "go:1.19", "go:default": "go:1.19", "php:default": "php:8.2", "ruby:default": "ruby:3.1", "java:default": "java:17",
	} {
		got, err := m.Resolve(in)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "python:2.7", "nodejs:16", "go:1.20", "java:8", "cobol:default", "python:"} {
		_, err := m.Resolve(bad)
		if !whisk.IsKind(err, whisk.Invalid) {
			t.Errorf("Resolve(%q) err = %v, want Invalid", bad, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"two defaults": `{"runtimes":{"p":[{"kind":"p:1","default":true,"launcher":"x"},{"kind":"p:2","default":true,"launcher":"x"}]}}`,
		"no default":   `{"runtimes":{"p":[{"kind":"p:1","launcher":"x"}]}}`,
		"duplicate":    `{"runtimes":{"p":[{"kind":"p:1","default":true,"launcher":"x"}],"q":[{"kind":"p:1","default":true,"launcher":"x"}]}}`,
		"no launcher":  `{"runtimes":{"p":[{"kind":"p:1","default":true}]}}`,
		"not json":     `{`,
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: Parse succeeded", name)
		}
	}
}

// Every kind of the built-in manifest names a launcher the runtime server
// has, and the nodejs kind runs in the image of the Node.js it names.
func TestBuiltinLaunchersAndImages(t *testing.T) {
	m := Default()
	for _, k := range m.Kinds() {
		r, ok := m.Lookup(k)
		if k == whisk.KindBlackbox {
			continue
		}
		if !ok || !slices.Contains(runtime.Launchers(), r.Launcher) {
			t.Errorf("kind %s: launcher %q is not one of %v", k, r.Launcher, runtime.Launchers())
		}
	}
	r, ok := m.Lookup("nodejs:18")
	if !ok || r.Family != "nodejs" || !r.Default || r.Launcher != runtime.LauncherNodejs || r.Image != "eddy/action-nodejs:18" {
		t.Errorf("nodejs:18 = %+v, %v", r, ok)
	}
}

func TestStemCellForms(t *testing.T) {
	m, err := Parse([]byte(`{"runtimes": {"python": [{"kind": "python:3.11", "default": true, "launcher": "python",
		"stemCells": [{"count": 2, "memory": 128}, {"initialCount": 1, "memory": "256 MB", "reactive": {"minCount": 1}}]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := m.Lookup("python:3.11")
	if len(rt.StemCells) != 2 || rt.StemCells[0] != (StemCell{Count: 2, MemoryMB: 128}) || rt.StemCells[1] != (StemCell{Count: 1, MemoryMB: 256}) {
		t.Fatalf("stem cells %+v", rt.StemCells)
	}
	for _, bad := range []string{`{"count": 1, "memory": "lots"}`, `{"count": -1, "memory": 256}`, `{"count": 1, "memory": true}`} {
		var s StemCell
		if err := s.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("%s parsed as %+v", bad, s)
		}
	}
	def, _ := Default().Lookup("python:3.11")
	if len(def.StemCells) != 1 || def.StemCells[0].MemoryMB != 256 {
		t.Errorf("built-in python stem cells %+v", def.StemCells)
	}
}
