package whisk

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

// TestActivationIDTimeOrdered: an id is 32 lowercase hex characters whose
// first 12 are the minting time in ms, so that later ids sort after
// earlier ones; the other 20 are random, so ids of the same millisecond
// differ.
func TestActivationIDTimeOrdered(t *testing.T) {
	t0 := time.UnixMilli(1_790_000_000_123)
	id := newActivationID(t0)
	if _, err := ParseActivationID(string(id)); err != nil {
		t.Fatalf("id %q does not parse: %v", id, err)
	}
	ms, err := strconv.ParseInt(string(id[:12]), 16, 64)
	if err != nil || ms != t0.UnixMilli() {
		t.Fatalf("id %q: prefix %d (%v), want the time %d", id, ms, err, t0.UnixMilli())
	}
	later := newActivationID(t0.Add(time.Millisecond))
	if !(later > id) {
		t.Fatalf("id of a later ms %q does not sort after %q", later, id)
	}
	seen := map[ActivationID]bool{}
	randomBits := map[byte]bool{}
	for range 10_000 {
		id := newActivationID(t0)
		if seen[id] {
			t.Fatalf("id %q minted twice", id)
		}
		seen[id] = true
		if id[:12] != newActivationID(t0)[:12] {
			t.Fatalf("same ms, different prefix: %q", id)
		}
		randomBits[id[12]] = true
		randomBits[id[31]] = true
	}
	if len(randomBits) != 16 {
		t.Fatalf("the random part uses %d of 16 hex digits", len(randomBits))
	}
	if now := NewActivationID(); now[:12] < id[:12] {
		t.Fatalf("NewActivationID %q is not of now", now)
	}
}

// TestRecordOf: a packaged action's record is in the caller's namespace
// under its bare name, with path ns/pkg/name and the binding annotation.
func TestRecordOf(t *testing.T) {
	meta := ActionMeta{Namespace: "owner", Name: "pkg/a", Version: "0.0.2", Kind: "python:3.11"}
	m := &ActivationMessage{ActivationID: "0123456789abcdef0123456789abcdef", Action: meta, Subject: "alice",
		CallerNamespace: "alice", Binding: "alice/b"}
	a := RecordOf(m, meta)
	a.Annotate(meta, Timings{}, false)
	if a.Namespace != "alice" || a.Name != "a" || a.Version != "0.0.2" || a.Subject != "alice" {
		t.Errorf("record = %+v", a)
	}
	if v, _ := a.Annotations.Get(AnnPath); string(v) != `"owner/pkg/a"` {
		t.Errorf("path = %s", v)
	}
	if v, _ := a.Annotations.Get(AnnBinding); string(v) != `"alice/b"` {
		t.Errorf("binding = %s", v)
	}
	m.CallerNamespace, m.Binding = "", ""
	a = RecordOf(m, ActionMeta{Namespace: "owner", Name: "a"})
	if a.Namespace != "owner" || a.Name != "a" || len(a.Annotations) != 0 {
		t.Errorf("plain record = %+v", a)
	}
}

func TestParseFullName(t *testing.T) {
	for in, want := range map[string]EntityName{
		"/ns/a":     {Namespace: "ns", Name: "a"},
		"ns/a":      {Namespace: "ns", Name: "a"},
		"/_/pkg/a":  {Namespace: "_", Package: "pkg", Name: "a"},
		"/ns/pkg/a": {Namespace: "ns", Package: "pkg", Name: "a"},
	} {
		got, err := ParseFullName(in)
		if err != nil || got != want {
			t.Errorf("ParseFullName(%q) = %+v, %v", in, got, err)
		}
	}
	if _, err := ParseFullName("a"); !IsKind(err, Invalid) || UserMessage(err) != MsgMalformed+"requirement failed: "+MsgFQNTooShort {
		t.Errorf("bare name: %v", err)
	}
	for _, bad := range []string{"/ns/p/a/b", "/ns/b@d!", "//a"} {
		if _, err := ParseFullName(bad); !IsKind(err, Invalid) {
			t.Errorf("ParseFullName(%q) = %v, want Invalid", bad, err)
		}
	}
}

func TestFilterName(t *testing.T) {
	str := func(s string) json.RawMessage { return AppendJSONString(nil, s) }
	for _, tc := range []struct {
		ann  Params
		want string
	}{
		{nil, "a"},
		{Params{{Key: AnnPath, Value: str("guest/a")}}, "a"},
		{Params{{Key: AnnPath, Value: str("guest/pkg/a")}}, "pkg/a"},
		{Params{{Key: AnnPath, Value: str("owner/pkg/a")}, {Key: AnnBinding, Value: str("guest/b")}}, "b/a"},
	} {
		a := Activation{Name: "a", Annotations: tc.ann}
		if got := a.FilterName(); got != tc.want {
			t.Errorf("FilterName(%v) = %q, want %q", tc.ann, got, tc.want)
		}
	}
}

// TestPackageEntity: a package round-trips through its entity with the
// entity's bookkeeping winning; a binding is never listed as public.
func TestPackageEntity(t *testing.T) {
	p := Package{Namespace: "ns", Name: "b", Binding: Binding{Namespace: "sys", Name: "shared"}, Publish: true, Version: "0.0.1"}
	e, err := p.Entity()
	if err != nil || e.Kind != EntityPackage || e.Namespace != "ns" || e.Name != "b" || e.Publish {
		t.Fatalf("Entity() = %+v, %v", e, err)
	}
	e.Rev, e.Updated = 3, 99
	got, err := PackageFromEntity(e)
	if err != nil || got.Rev != 3 || got.Updated != 99 || !got.Publish || !got.IsBinding() || got.Binding.String() != "sys/shared" ||
		got.Parameters == nil || got.Annotations == nil {
		t.Errorf("PackageFromEntity = %+v, %v", got, err)
	}
	b, _ := json.Marshal(Package{Namespace: "ns", Name: "p"})
	if want := `{"namespace":"ns","name":"p","binding":{},"parameters":null,"version":"","publish":false,"annotations":null,"updated":0}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
	if _, err := PackageFromEntity(Entity{Doc: json.RawMessage("[")}); !IsKind(err, Internal) {
		t.Errorf("bad doc: %v", err)
	}
}

// TestDerivedActivationID checks that derived ids are valid, repeatable
// for one key and time, different for another key or time, and keep the
// time prefix that orders ids; children likewise.
func TestDerivedActivationID(t *testing.T) {
	at := time.UnixMilli(1790000000123)
	a := DerivedActivationID(at, "guest/t@1")
	if _, err := ParseActivationID(string(a)); err != nil {
		t.Fatalf("%q: %v", a, err)
	}
	if b := DerivedActivationID(at, "guest/t@1"); b != a {
		t.Fatalf("same key and time gave %s and %s", a, b)
	}
	if b := DerivedActivationID(at, "guest/t@2"); b == a || b[:12] != a[:12] {
		t.Fatalf("another key gave %s (of %s): want another id with the same time prefix", b, a)
	}
	later := DerivedActivationID(at.Add(time.Millisecond), "guest/t@1")
	if later <= a {
		t.Fatalf("a later time sorts first: %s <= %s", later, a)
	}
	c1, c2 := a.Child("r1"), a.Child("r2")
	if c1 == c2 || c1 != a.Child("r1") || c1 == a || c1[:12] != a[:12] {
		t.Fatalf("children %s %s of %s", c1, c2, a)
	}
	if _, err := ParseActivationID(string(c1)); err != nil {
		t.Fatalf("%q: %v", c1, err)
	}
	if later.Child("r1") == c1 {
		t.Fatal("children of two ids collide")
	}
}
