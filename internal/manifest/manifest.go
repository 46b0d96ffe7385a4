// Package manifest reads Eddy's runtime manifest: which action kinds exist,
// which family each belongs to and which is the family's default, which image
// runs each kind (Docker) and which launcher the runtime server uses for it
// (process backend), and the prewarm stem-cell settings. The manifest built
// into the binary is runtimes.json beside this file; an operator can load
// another with Load.
package manifest

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/eddy-faas/eddy/internal/whisk"
)

//go:embed runtimes.json
var builtin []byte

// StemCell is a prewarm setting: keep Count started containers of a kind
// with MemoryMB memory. OpenWhisk's form is read too: "initialCount" for
// count and memory as a string such as "256 MB" ("reactive" is ignored:
// Eddy keeps the count fixed).
type StemCell struct {
	Count    int   `json:"count"`
	MemoryMB int64 `json:"memory"`
}

// UnmarshalJSON reads Eddy's and OpenWhisk's forms.
func (s *StemCell) UnmarshalJSON(b []byte) error {
	var raw struct {
		Count        *int            `json:"count"`
		InitialCount *int            `json:"initialCount"`
		Memory       json.RawMessage `json:"memory"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	switch {
	case raw.Count != nil:
		s.Count = *raw.Count
	case raw.InitialCount != nil:
		s.Count = *raw.InitialCount
	}
	s.MemoryMB = 0
	if len(raw.Memory) > 0 {
		var text string
		if err := json.Unmarshal(raw.Memory, &s.MemoryMB); err != nil {
			if json.Unmarshal(raw.Memory, &text) != nil {
				return fmt.Errorf("stem cell memory %s: want MB as a number or \"256 MB\"", raw.Memory)
			}
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(text)), "MB")), 10, 64)
			if err != nil {
				return fmt.Errorf("stem cell memory %q: want MB as a number or \"256 MB\"", text)
			}
			s.MemoryMB = n
		}
	}
	if s.Count < 0 || s.MemoryMB < 0 {
		return fmt.Errorf("stem cell %s: count and memory must not be negative", b)
	}
	return nil
}

// Runtime is one kind.
type Runtime struct {
	Kind       string     `json:"kind"`
	Family     string     `json:"-"`
	Default    bool       `json:"default,omitempty"`
	Deprecated bool       `json:"deprecated,omitempty"`
	Launcher   string     `json:"launcher"` // how the runtime server runs code: "python", "native", ...
	Image      string     `json:"image"`
	StemCells  []StemCell `json:"stemCells,omitempty"`
}

// Manifest is a parsed runtime manifest.
type Manifest struct {
	Runtimes map[string][]Runtime `json:"runtimes"`
	Blackbox struct {
		DefaultImage string `json:"defaultImage"`
	} `json:"blackbox"`

	byKind   map[string]Runtime
	defaults map[string]string // family → default kind
}

// Default returns the manifest built into the binary.
func Default() *Manifest {
	m, err := Parse(builtin)
	if err != nil {
		panic("built-in runtimes.json is invalid: " + err.Error()) // a build-time invariant, checked by tests
	}
	return m
}

// Load reads a manifest file.
func Load(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read runtime manifest: %w", err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("runtime manifest %s: %w", path, err)
	}
	return m, nil
}

// Parse parses and checks a manifest: kinds unique, exactly one default per
// family, every kind with a launcher.
func Parse(b []byte) (*Manifest, error) {
	m := &Manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, err
	}
	m.byKind = map[string]Runtime{}
	m.defaults = map[string]string{}
	for family, rs := range m.Runtimes {
		for i := range rs {
			r := &rs[i]
			r.Family = family
			if r.Kind == "" || r.Launcher == "" {
				return nil, fmt.Errorf("family %s: every runtime needs a kind and a launcher", family)
			}
			if _, dup := m.byKind[r.Kind]; dup {
				return nil, fmt.Errorf("kind %s appears twice", r.Kind)
			}
			m.byKind[r.Kind] = *r
			if r.Default {
				if d, ok := m.defaults[family]; ok {
					return nil, fmt.Errorf("family %s has two defaults: %s and %s", family, d, r.Kind)
				}
				m.defaults[family] = r.Kind
			}
		}
		if _, ok := m.defaults[family]; !ok {
			return nil, fmt.Errorf("family %s has no default kind", family)
		}
	}
	if m.Blackbox.DefaultImage == "" {
		m.Blackbox.DefaultImage = "openwhisk/dockerskeleton"
	}
	return m, nil
}

// Resolve maps a kind as a client sends it ("python:default", "python:3.11",
// "blackbox") to the kind Eddy stores. An unknown kind is an Invalid error
// with OpenWhisk's message.
func (m *Manifest) Resolve(kind string) (string, error) {
	if kind == whisk.KindBlackbox {
		return kind, nil
	}
	if family, ok := strings.CutSuffix(kind, ":default"); ok {
		if d, ok := m.defaults[family]; ok {
			return d, nil
		}
	} else if _, ok := m.byKind[kind]; ok {
		return kind, nil
	} else if d, ok := m.defaults[kind]; ok && !strings.Contains(kind, ":") {
		return d, nil
	}
	return "", whisk.E("manifest.Resolve", whisk.Invalid, whisk.MsgMalformed+whisk.MsgUnsupportedKind(kind, m.Kinds()), nil)
}

// Lookup returns the runtime of a resolved kind.
func (m *Manifest) Lookup(kind string) (Runtime, bool) {
	r, ok := m.byKind[kind]
	return r, ok
}

// Kinds lists every kind, sorted, with "blackbox".
func (m *Manifest) Kinds() []string {
	out := make([]string, 0, len(m.byKind)+1)
	for k := range m.byKind {
		out = append(out, k)
	}
	out = append(out, whisk.KindBlackbox)
	sort.Strings(out)
	return out
}

// Images lists the image of every kind, sorted and without duplicates.
func (m *Manifest) Images() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range m.byKind {
		if r.Image != "" && !seen[r.Image] {
			seen[r.Image] = true
			out = append(out, r.Image)
		}
	}
	sort.Strings(out)
	return out
}

// DefaultImage is the blackbox image of --native actions.
func (m *Manifest) DefaultImage() string { return m.Blackbox.DefaultImage }

// Describe is the "runtimes" object of GET /: family → [{kind, default, image, deprecated}].
func (m *Manifest) Describe() map[string][]Runtime { return m.Runtimes }
