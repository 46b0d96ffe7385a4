package manifest

import (
	"testing"

	"github.com/eddy-faas/eddy/internal/whisk"
)

func TestResolve(t *testing.T) {
	m := Default()
	for in, want := range map[string]string{
		"python:default": "python:3.11", "python:3.11": "python:3.11", "python": "python:3.11",
		"native": "native", "native:default": "native", "blackbox": "blackbox",
	} {
		got, err := m.Resolve(in)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "python:2.7", "cobol:default", "python:"} {
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
